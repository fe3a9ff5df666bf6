/*
 * json_format.h - the text of q numbers and temporal values, for the JSON renderer
 * (json.c). Each function writes a NUL-terminated text of at most NUMBER_TEXT_SIZE bytes
 * into out. docs/json.md gives the format of each type.
 */
#ifndef QMUX_JSON_FORMAT_H
#define QMUX_JSON_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Sizes of the scratch buffers for one formatted number or temporal value. */
#define NUMBER_TEXT_SIZE 48

#define NANOSECONDS_PER_SECOND INT64_C(1000000000)

/* Writes value in decimal and returns the length of the text. */
size_t json_format_int64(char *out, int64_t value);

/* Write the shortest %g text that reads back as the same finite value. */
void json_format_float(char *out, double value);
void json_format_real(char *out, float value);

/* Write a date (days since 2000.01.01) as YYYY-MM-DD and a month (months since 2000.01)
 * as YYYY-MM. */
void json_format_date(char *out, int64_t days);
void json_format_month(char *out, int32_t months);

/* Writes "YYYY-MM-DDThh:mm:ss", and the fraction in the given number of digits, for a
 * time counted in units (units_per_second of them a second) since 2000.01.01. */
void json_format_date_time(char *out, int64_t value, int64_t units_per_second,
                           int fraction_digits);

/* Write a minute, second, time or timespan as q shows it. */
void json_format_minute(char *out, int32_t minutes);
void json_format_second(char *out, int32_t seconds);
void json_format_time(char *out, int32_t milliseconds);
void json_format_timespan(char *out, int64_t nanoseconds);

/* Writes a finite datetime (days since 2000.01.01) to the millisecond. Returns 1, or 0
 * with nothing written when it is too far from 2000.01.01 to have calendar text. */
int json_format_datetime(char *out, double days);

#endif
