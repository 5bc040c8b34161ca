//! The contract versions a component may be built for, and calling the exports they share.
//!
//! A component is linked against the world it was built for: a 0.1.0 component sees exactly
//! the 0.1.0 world (no `isolation` import), a 0.2.0 one also gets `isolation`. `describe` and
//! `run-sample` are the same functions in both, with the same types.

use proctor_component::World;
use wasmtime::Store;

use crate::bindings::{self, EvalInfo, SampleError, v2};
use crate::host::SampleState;

/// A component, linked and type-checked against its world, ready to instantiate.
#[derive(Clone)]
pub(crate) enum WorldPre {
    V0_1(bindings::EvalPre<SampleState>),
    V0_2(v2::EvalPre<SampleState>),
}

impl WorldPre {
    pub fn world(&self) -> World {
        match self {
            WorldPre::V0_1(_) => World::V0_1,
            WorldPre::V0_2(_) => World::V0_2,
        }
    }

    /// A fresh instance's `describe`.
    pub async fn describe(&self, store: &mut Store<SampleState>) -> wasmtime::Result<EvalInfo> {
        match self {
            WorldPre::V0_1(pre) => {
                let eval = pre.instantiate_async(&mut *store).await?;
                eval.call_describe(store).await
            }
            WorldPre::V0_2(pre) => {
                let eval = pre.instantiate_async(&mut *store).await?;
                eval.call_describe(store).await
            }
        }
    }

    /// A fresh instance's `run-sample(index)`.
    pub async fn run_sample(
        &self,
        store: &mut Store<SampleState>,
        index: u32,
    ) -> wasmtime::Result<Result<(), SampleError>> {
        match self {
            WorldPre::V0_1(pre) => {
                let eval = pre.instantiate_async(&mut *store).await?;
                eval.call_run_sample(store, index).await
            }
            WorldPre::V0_2(pre) => {
                let eval = pre.instantiate_async(&mut *store).await?;
                eval.call_run_sample(store, index).await
            }
        }
    }
}
