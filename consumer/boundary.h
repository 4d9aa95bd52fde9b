/*
 * boundary: comparing a value with a clinical limit (CTCAE grade bounds,
 * rule thresholds, multiples of ULN). A value within one part in 10^9 of a
 * limit is treated as on it: unit conversion (e.g. ukat/L x 60) leaves
 * rounding dust that must not move a result across a boundary, and no lab
 * reports 10 digits. "Above" is strictly above (CTCAE's ">3.0 x ULN").
 */
#ifndef VIGIL_BOUNDARY_H
#define VIGIL_BOUNDARY_H

#include <math.h>
#include <stdbool.h>

static inline double boundary_slack(double limit)
{
    return fabs(limit) * 1e-9;
}

/* V strictly above LIMIT, not merely rounding dust above it. */
static inline bool boundary_above(double v, double limit)
{
    return v > limit + boundary_slack(limit);
}

/* V at or above LIMIT, allowing rounding dust below it. */
static inline bool boundary_at_least(double v, double limit)
{
    return v >= limit - boundary_slack(limit);
}

/* V strictly below LIMIT. */
static inline bool boundary_below(double v, double limit)
{
    return v < limit - boundary_slack(limit);
}

/* V at or below LIMIT, allowing rounding dust above it. */
static inline bool boundary_at_most(double v, double limit)
{
    return v <= limit + boundary_slack(limit);
}

#endif
