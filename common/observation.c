#include "observation.h"

#include <string.h>

#include "alert.h"

static const char *const status_names[] = {"final", "amended", "corrected", "cancelled",
                                           "entered-in-error"};

const char *obs_status_name(enum obs_status status)
{
    return status_names[status];
}

int obs_status_parse(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(s, status_names[i]) == 0)
            return i;
    if (strcmp(s, "entered_in_error") == 0)
        return OBS_ENTERED_IN_ERROR;
    return -1;
}

static const char *const severity_names[] = {"info", "warning", "critical"};

const char *alert_severity_name(enum alert_severity s)
{
    return severity_names[s];
}

int alert_severity_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, severity_names[i]) == 0)
            return i;
    return -1;
}
