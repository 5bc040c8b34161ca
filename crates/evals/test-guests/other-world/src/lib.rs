//! A component of another world: it exports `greet`, not `describe` and `run-sample`.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package other:thing@0.1.0;
            world greeter {
                export greet: func() -> string;
            }
        ",
    });
}

struct Guest;

impl bindings::Guest for Guest {
    fn greet() -> String {
        "hello".into()
    }
}

bindings::export!(Guest with_types_in bindings);
