/*
 * unit_main.c - runs every unit-test suite; exit status 0 only when all pass.
 */
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *testdata_dir(void)
{
    static char path[4096];
    const char *source = getenv("QMUX_SOURCE_DIR");

    snprintf(path, sizeof(path), "%s/../shared/testdata", source ? source : ".");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s is absent; tests that compare with real kdb+ samples "
                        "did not run\n", path);
        return NULL;
    }
    return path;
}

int main(void)
{
    SRunner *runner = srunner_create(ipc_suite());

    srunner_add_suite(runner, config_suite());
    srunner_add_suite(runner, compress_suite());
    srunner_add_suite(runner, qenc_suite());
    srunner_add_suite(runner, qdec_suite());
    srunner_add_suite(runner, json_suite());
    srunner_add_suite(runner, auth_suite());
    srunner_add_suite(runner, policy_suite());
    srunner_add_suite(runner, convert_suite());

    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
