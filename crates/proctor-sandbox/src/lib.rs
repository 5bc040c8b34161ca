//! proctor-sandbox
