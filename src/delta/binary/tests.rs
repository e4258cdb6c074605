//! Binary deltas end to end in memory: see the tests at the bottom of each module too.
