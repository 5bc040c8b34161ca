//! proctor-evals
