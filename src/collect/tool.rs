//! One run of an infiniband-diags tool as a child process: in its own process group (so a
//! wrapper script's children go with it), within its own timeout, its output read line by line
//! and each line stamped with the time it was read, and killed, group and all, when the run is
//! dropped: a collector stopped mid-sweep (SIGTERM, SIGINT) leaves no tool behind.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// How long each tool may run: a default, and overrides by program name.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub default: Duration,
    pub by_tool: HashMap<String, Duration>,
}

impl Timeouts {
    pub fn all(default: Duration) -> Timeouts {
        Timeouts {
            default,
            by_tool: HashMap::new(),
        }
    }

    pub fn of(&self, program: &str) -> Duration {
        self.by_tool.get(program).copied().unwrap_or(self.default)
    }

    /// Parse `NAME=SECONDS` (the `--tool-timeout` flag).
    pub fn parse_override(text: &str) -> Result<(String, Duration), String> {
        let (name, secs) = text
            .split_once('=')
            .ok_or_else(|| format!("--tool-timeout {text:?}: expected NAME=SECONDS"))?;
        let secs: f64 = secs
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .ok_or_else(|| {
                format!("--tool-timeout {text:?}: seconds must be a positive number, got {secs:?}")
            })?;
        Ok((name.trim().to_string(), Duration::from_secs_f64(secs)))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("{tool}: no answer within {timeout:?}")]
    TimedOut { tool: String, timeout: Duration },
    #[error("{tool}: {reason}")]
    Failed { tool: String, reason: String },
}

impl ToolError {
    pub fn timed_out(&self) -> bool {
        matches!(self, ToolError::TimedOut { .. })
    }
}

/// A tool's output, each line with the epoch milliseconds at which it was read (within one
/// pipe buffer of when the tool wrote it).
#[derive(Debug, Default)]
pub struct Output {
    pub lines: Vec<(i64, String)>,
}

impl Output {
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (_, l) in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: signalling the process group we created for our own child.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

/// Run `cmd` (already given its arguments and environment) as `label`, within `timeout`.
/// `ok_codes` are exit codes besides 0 that still mean "here is the report".
pub async fn run(
    mut cmd: Command,
    label: &str,
    timeout: Duration,
    ok_codes: &[i32],
) -> Result<Output, ToolError> {
    let failed = |reason: String| ToolError::Failed {
        tool: label.to_string(),
        reason,
    };
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
    let mut guard = GroupGuard(child.id().map(|p| p as i32));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let work = async {
        let mut lines = Vec::new();
        let mut reader = BufReader::new(stdout).lines();
        let mut err = String::new();
        let read_err = async {
            let _ = stderr.read_to_string(&mut err).await;
        };
        let read_out = async {
            while let Ok(Some(line)) = reader.next_line().await {
                lines.push((crate::clock::now_ms(), line));
            }
        };
        tokio::join!(read_err, read_out);
        let status = child.wait().await;
        (lines, err, status)
    };
    let (lines, err, status) =
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ToolError::TimedOut {
                tool: label.to_string(),
                timeout,
            })?;
    let status = status.map_err(|e| failed(e.to_string()))?;
    // The leader has exited and been reaped: nothing of the group is left to kill, and its id
    // may be reused.
    guard.0 = None;
    let code = status.code();
    if !status.success() && !code.is_some_and(|c| ok_codes.contains(&c)) {
        return Err(failed(format!("{status}: {}", err.trim())));
    }
    Ok(Output { lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_a_tool_past_its_timeout_then_it_and_its_children_are_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("child.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        let err = run(cmd, "sh", Duration::from_millis(300), &[])
            .await
            .expect_err("times out");
        assert!(err.timed_out(), "{err}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        // The grandchild is gone (or a zombie of init's) soon after.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains(") Z "));
            if !alive {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "sleep {pid} survived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn given_a_tool_that_prints_then_each_line_is_stamped_and_codes_are_judged() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo one; echo two; exit 1");
        let out = run(cmd, "sh", Duration::from_secs(10), &[1])
            .await
            .expect("exit 1 is a report here");
        assert_eq!(out.text(), "one\ntwo\n");
        assert!(out.lines.iter().all(|(t, _)| *t > 0));
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo oops >&2; exit 2");
        let err = run(cmd, "sh", Duration::from_secs(10), &[1])
            .await
            .expect_err("exit 2 fails");
        assert!(err.to_string().contains("oops"), "{err}");
    }

    #[test]
    fn overrides_name_the_tool_and_refuse_bad_seconds() {
        let (name, d) = Timeouts::parse_override("ibqueryerrors=2.5").expect("ok");
        assert_eq!(
            (name.as_str(), d),
            ("ibqueryerrors", Duration::from_millis(2500))
        );
        let e = Timeouts::parse_override("ibqueryerrors=0").expect_err("zero");
        assert!(e.contains("\"0\""), "{e}");
        assert!(Timeouts::parse_override("ibqueryerrors").is_err());
    }
}
