//! proctor-attest
