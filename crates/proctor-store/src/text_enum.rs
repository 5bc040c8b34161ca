//! Enums kept as text in the database and the API: one macro writes `as_str`, `Display` and
//! `FromStr` from one list of names, so the two directions cannot drift.
//!
//! A leaf: it imports nothing of the crate (the expansion names `$crate::error` where it is
//! used).

/// `text_enum!(Type, "what", Variant = "text", ...)`: `Type::as_str`, `Display`, and `FromStr`
/// with [`StoreError::Invalid`](crate::error::StoreError::Invalid)`("what")` for unknown text.
macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident = $text:literal),+ $(,)?) => {
        impl $ty {
            /// The name used in the database and the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::error::StoreError;

            fn from_str(s: &str) -> $crate::error::Result<$ty> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err($crate::error::StoreError::Invalid($what)),
                }
            }
        }
    };
}
pub(crate) use text_enum;
