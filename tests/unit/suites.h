/*
 * suites.h - every Check suite of the unit-test runner, one per module.
 */
#ifndef QMUX_TEST_SUITES_H
#define QMUX_TEST_SUITES_H

#include <check.h>

Suite *ipc_suite(void);
Suite *config_suite(void);
Suite *compress_suite(void);
Suite *qenc_suite(void);
Suite *qdec_suite(void);
Suite *json_suite(void);
Suite *auth_suite(void);
Suite *policy_suite(void);
Suite *convert_suite(void);

/* Returns the path of the shared serialization samples folder, or NULL (after printing a
 * SKIP line naming the path that was tried) when it is absent. */
const char *testdata_dir(void);

#endif
