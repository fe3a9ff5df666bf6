/*
 * json_format.c - the text of q numbers and temporal values (see json_format.h).
 */
#include "json_format.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t json_format_int64(char *out, int64_t value)
{
    char digits[24];
    size_t n = 0;
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;

    do {
        digits[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);

    size_t length = 0;
    if (value < 0)
        out[length++] = '-';
    while (n > 0)
        out[length++] = digits[--n];
    out[length] = '\0';
    return length;
}

/* The decimal separator of snprintf follows the C locale's LC_NUMERIC, so any byte other
 * than a digit, sign or exponent mark is turned into '.'. */
static void force_decimal_point(char *text)
{
    for (char *p = text; *p; p++)
        if (!(*p >= '0' && *p <= '9') && *p != '-' && *p != '+' && *p != 'e')
            *p = '.';
}

/* Formats a finite double as the shortest %g text (15 to 17 significant digits) that
 * reads back as the same value. */
void json_format_float(char *out, double value)
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, NUMBER_TEXT_SIZE, "%.*g", precision, value);
        if (strtod(out, NULL) == value)
            break;
    }
    force_decimal_point(out);
}

/* Formats a finite float as the shortest %g text (6 to 9 significant digits) that reads
 * back as the same value. */
void json_format_real(char *out, float value)
{
    for (int precision = 6; precision <= 9; precision++) {
        snprintf(out, NUMBER_TEXT_SIZE, "%.*g", precision, (double)value);
        if (strtof(out, NULL) == value)
            break;
    }
    force_decimal_point(out);
}

static int64_t floor_divide(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && (a < 0) != (b < 0))
        q--;
    return q;
}

/* Days between 1970.01.01 and kdb+'s epoch 2000.01.01. */
#define EPOCH_DAYS_SINCE_1970 10957

/*
 * Converts days since 2000.01.01 to a proleptic Gregorian date. This is Howard Hinnant's
 * civil_from_days algorithm (public domain): days are counted from 0000-03-01 in 400-year
 * eras of 146097 days, so leap days fall at the end of each counted year.
 */
static void civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + EPOCH_DAYS_SINCE_1970 + 719468;
    int64_t era = floor_divide(z, 146097);
    int64_t day_of_era = z - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t shifted_month = (5 * day_of_year + 2) / 153;    /* 0 = March */

    *day = (int)(day_of_year - (153 * shifted_month + 2) / 5 + 1);
    *month = (int)(shifted_month < 10 ? shifted_month + 3 : shifted_month - 9);
    *year = year_of_era + era * 400 + (*month <= 2);
}

/* Writes a year as four digits, or with a sign (ISO 8601's expanded form) outside
 * 0000..9999. Returns the number of characters written. */
static int format_year(char *out, size_t size, int64_t year)
{
    if (year >= 0 && year <= 9999)
        return snprintf(out, size, "%04" PRId64, year);
    return snprintf(out, size, "%+05" PRId64, year);
}

void json_format_date(char *out, int64_t days)
{
    int64_t year;
    int month, day;

    civil_from_days(days, &year, &month, &day);
    int n = format_year(out, NUMBER_TEXT_SIZE, year);
    snprintf(out + n, NUMBER_TEXT_SIZE - (size_t)n, "-%02d-%02d", month, day);
}

void json_format_month(char *out, int32_t months)
{
    int64_t year = 2000 + floor_divide(months, 12);
    int64_t month = months - floor_divide(months, 12) * 12 + 1;
    int n = format_year(out, NUMBER_TEXT_SIZE, year);

    snprintf(out + n, NUMBER_TEXT_SIZE - (size_t)n, "-%02" PRId64, month);
}

#define NANOSECONDS_PER_DAY (86400 * NANOSECONDS_PER_SECOND)
#define MILLISECONDS_PER_DAY INT64_C(86400000)

/* Writes "YYYY-MM-DDThh:mm:ss", and the fraction in the given number of digits, for a
 * time counted in units (units_per_second of them a second) since 2000.01.01. */
void json_format_date_time(char *out, int64_t value, int64_t units_per_second,
                             int fraction_digits)
{
    int64_t units_per_day = 86400 * units_per_second;
    int64_t days = value / units_per_day;
    int64_t within_day = value % units_per_day;
    int64_t seconds;

    /* Floor division without days * units_per_day, which overflows near INT64_MIN. */
    if (within_day < 0) {
        within_day += units_per_day;
        days--;
    }
    seconds = within_day / units_per_second;

    json_format_date(out, days);
    size_t n = strlen(out);
    snprintf(out + n, NUMBER_TEXT_SIZE - n, "T%02d:%02d:%02d.%0*" PRId64,
             (int)(seconds / 3600), (int)(seconds / 60 % 60), (int)(seconds % 60),
             fraction_digits, within_day % units_per_second);
}

/*
 * Writes a minute, second or time as q shows it: "[-]hh:mm", "[-]hh:mm:ss" or
 * "[-]hh:mm:ss.mmm". The hours are not limited to 23 because these types hold any int32.
 */
void json_format_minute(char *out, int32_t minutes)
{
    uint64_t magnitude = minutes < 0 ? 0 - (uint64_t)minutes : (uint64_t)minutes;

    snprintf(out, NUMBER_TEXT_SIZE, "%s%02" PRIu64 ":%02" PRIu64, minutes < 0 ? "-" : "",
             magnitude / 60, magnitude % 60);
}

void json_format_second(char *out, int32_t seconds)
{
    uint64_t magnitude = seconds < 0 ? 0 - (uint64_t)seconds : (uint64_t)seconds;

    snprintf(out, NUMBER_TEXT_SIZE, "%s%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64,
             seconds < 0 ? "-" : "", magnitude / 3600, magnitude / 60 % 60, magnitude % 60);
}

void json_format_time(char *out, int32_t milliseconds)
{
    uint64_t magnitude =
        milliseconds < 0 ? 0 - (uint64_t)milliseconds : (uint64_t)milliseconds;
    uint64_t seconds = magnitude / 1000;

    snprintf(out, NUMBER_TEXT_SIZE, "%s%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%03" PRIu64,
             milliseconds < 0 ? "-" : "", seconds / 3600, seconds / 60 % 60, seconds % 60,
             magnitude % 1000);
}

/* Writes a timespan as q shows it: "[-]<days>D<hh>:<mm>:<ss>.<nanoseconds>". */
void json_format_timespan(char *out, int64_t nanoseconds)
{
    uint64_t magnitude =
        nanoseconds < 0 ? 0 - (uint64_t)nanoseconds : (uint64_t)nanoseconds;
    uint64_t days = magnitude / (uint64_t)NANOSECONDS_PER_DAY;
    uint64_t within_day = magnitude % (uint64_t)NANOSECONDS_PER_DAY;
    uint64_t seconds = within_day / (uint64_t)NANOSECONDS_PER_SECOND;

    snprintf(out, NUMBER_TEXT_SIZE,
             "%s%" PRIu64 "D%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ".%09" PRIu64,
             nanoseconds < 0 ? "-" : "", days, seconds / 3600, seconds / 60 % 60, seconds % 60,
             within_day % (uint64_t)NANOSECONDS_PER_SECOND);
}

/* A datetime is a double of days, shown to the millisecond. Within this many days of
 * 2000.01.01 (about 270 million years) the milliseconds fit in an int64_t with room to
 * spare. The limit is this renderer's choice, not kdb+'s. */
#define DATETIME_MAX_DAYS 1e11

/* Formats a finite datetime, or returns 0 when it is too far from 2000.01.01. */
int json_format_datetime(char *out, double days)
{
    if (!(fabs(days) < DATETIME_MAX_DAYS))
        return 0;
    int64_t milliseconds = llround(days * (double)MILLISECONDS_PER_DAY);
    json_format_date_time(out, milliseconds, 1000, 3);
    return 1;
}
