//! proctor-guest
