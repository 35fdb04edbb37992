//! The simulated fabric of `ibsight::collect::ibsim`, and whether the tests may use it.

pub use ibsight::collect::ibsim::*;

/// Whether the simulator and the tools are installed. `REQUIRE_IBSIM_TESTS=1` (set by
/// scripts/test, which installs them) turns a missing install into a failure.
pub fn available() -> bool {
    let ok = installed();
    if !ok && std::env::var("REQUIRE_IBSIM_TESTS").is_ok() {
        panic!("ibsim, opensm or infiniband-diags is missing (scripts/test installs them)");
    }
    ok
}
