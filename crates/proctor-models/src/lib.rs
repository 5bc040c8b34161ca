//! proctor-models
