//! Binary deltas end to end.
