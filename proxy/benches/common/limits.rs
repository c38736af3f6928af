//! Process limits: ten thousand connections through the proxy need more descriptors than the usual
//! default, in this process, the proxy and its upstream (children inherit the limit).

use anyhow::{Result, bail};

/// Raises RLIMIT_NOFILE towards `want`: to `want` itself if allowed (raising the hard limit needs
/// CAP_SYS_RESOURCE), else to the hard limit. Returns the soft limit now in force.
pub fn raise_nofile_best(want: u64) -> Result<u64> {
    match raise_nofile(want) {
        Ok(v) => Ok(v),
        Err(first) => {
            let hard = current()?.rlim_max;
            raise_nofile(hard).map_err(|_| first)
        }
    }
}

fn current() -> Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes to a properly sized rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    Ok(lim)
}

/// Raises RLIMIT_NOFILE to at least `want` (soft and hard). Raising the hard limit needs
/// CAP_SYS_RESOURCE; without it the error says what to do.
pub fn raise_nofile(want: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from a properly sized rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if lim.rlim_cur >= want {
            return Ok(lim.rlim_cur);
        }
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
            bail!(
                "cannot raise the open-file limit from {} (hard {}) to {want}: {} \
                 (run as root or raise `ulimit -Hn` first)",
                lim.rlim_cur,
                lim.rlim_max,
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(want)
}

/// Environment variable with a nice value (e.g. `-10`) for this process and, by inheritance, the
/// proxy, upstream, nginx and wrk it starts. On a machine shared with other work this keeps their
/// scheduling delays out of both sides of each comparison; it needs CAP_SYS_NICE for negative values.
pub const NICE_ENV: &str = "PROXYBENCH_NICE";

/// Applies [`NICE_ENV`] if it is set; returns the value applied.
pub fn apply_nice_from_env() -> Result<Option<i32>> {
    let Ok(raw) = std::env::var(NICE_ENV) else {
        return Ok(None);
    };
    let nice: i32 = raw
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{NICE_ENV}: {raw:?} is not an integer"))?;
    if !(-20..=19).contains(&nice) {
        bail!("{NICE_ENV}: {nice} is outside -20..=19");
    }
    // SAFETY: setpriority has no memory-safety preconditions.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
        bail!(
            "{NICE_ENV}={nice}: setpriority failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(Some(nice))
}
