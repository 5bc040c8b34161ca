//! The first eight bytes: garbage, a core module, or a component.

use crate::error::ComponentError;

/// Tells garbage, a core module and a component apart from the first eight bytes, so each gets
/// its own message (wasmtime's parser would call them all "malformed").
pub fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    if bytes.is_empty() {
        return Err(ComponentError::Empty);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ComponentError::NotWasm);
    }
    let layer = [bytes[4], bytes[5], bytes[6], bytes[7]];
    match layer {
        [1, 0, 0, 0] => Err(ComponentError::CoreModule),
        // Component-model binary: version 0x0d, layer 1.
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        _ => Err(ComponentError::UnknownLayer(layer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_garbage_modules_and_components_apart() {
        assert_eq!(check_header(b""), Err(ComponentError::Empty));
        assert_eq!(check_header(b"hello, world"), Err(ComponentError::NotWasm));
        assert_eq!(check_header(b"\0asm"), Err(ComponentError::NotWasm));
        assert_eq!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(ComponentError::CoreModule)
        );
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
        assert_eq!(
            check_header(b"\0asm\x02\0\0\0"),
            Err(ComponentError::UnknownLayer([2, 0, 0, 0]))
        );
    }

    #[test]
    fn the_core_module_message_says_how_to_make_a_component() {
        let msg = ComponentError::CoreModule.to_string();
        assert!(
            msg.contains("wasm-tools component new") && msg.contains("wasm32-wasip2"),
            "{msg}"
        );
    }
}
