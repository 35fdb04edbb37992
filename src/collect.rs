//! Fabric sources: what reads a real InfiniBand fabric and posts its samples.
//!
//! - `parse`: infiniband-diags' outputs (`iblinkinfo --line`, `ibswitches`, `perfquery`) to
//!   records, pure
//! - `assemble`: records to samples, with stream ids operators recognise, pure
//! - `ibnd_cache`: every port's enabled and supported widths and speeds, from the discovery's
//!   cache file, pure
//! - `norm`: what most links of one kind run at, given to each port of a sweep, pure
//! - `topology`: the expected topology (`ibnetdiscover` output) and node-name map, and a
//!   sweep held against them, pure
//! - `sweep`: one sweep through the tools, at most a few fabric clients at once
//! - `post`: in-order delivery with retries and a bounded buffer of sweeps
//! - `ibsim`: a simulated fabric on the real management stack (tests, `demo --fabric ibsim`)
//! - `sysfs`: a host's own ports from `/sys/class/infiniband` (`ibsight agent`)

pub mod assemble;
pub mod ibnd_cache;
pub mod ibsim;
pub mod norm;
pub mod parse;
pub mod post;
pub mod sweep;
pub mod sysfs;
pub mod tool;
pub mod topology;
