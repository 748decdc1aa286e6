//! QEMU's job state machine (`job.c`: `JobSTT` and `JobVerbTable`).

use monitor::block::JobVerb;
use monitor::block::types::JobStatus;

use JobStatus::*;

/// Whether `from -> to` is a transition QEMU allows.
pub fn transition_allowed(from: JobStatus, to: JobStatus) -> bool {
    match from {
        Undefined => to == Created,
        Created => matches!(to, Running | Aborting | Null),
        Running => matches!(to, Paused | Ready | Waiting | Aborting),
        Paused => to == Running,
        Ready => matches!(to, Standby | Waiting | Aborting),
        Standby => to == Ready,
        Waiting => matches!(to, Pending | Aborting),
        Pending => matches!(to, Aborting | Concluded),
        Aborting => matches!(to, Aborting | Concluded),
        Concluded => to == Null,
        Null => false,
    }
}

/// Whether a job in `status` accepts `verb`.
pub fn verb_allowed(verb: JobVerb, status: JobStatus) -> bool {
    match verb {
        JobVerb::Cancel { .. } => {
            matches!(status, Created | Running | Paused | Ready | Standby | Waiting | Pending)
        }
        JobVerb::Pause | JobVerb::Resume | JobVerb::SetSpeed(_) => {
            matches!(status, Created | Running | Paused | Ready | Standby)
        }
        JobVerb::Complete => matches!(status, Ready | Standby),
        JobVerb::Finalize => status == Pending,
        JobVerb::Dismiss => status == Concluded,
    }
}

/// `Job 'x' in state 'y' cannot accept command verb 'z'`.
pub fn verb_error(id: &str, status: JobStatus, verb: JobVerb) -> String {
    format!("Job '{id}' in state '{}' cannot accept command verb '{}'", status.as_str(), verb.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_job_c() {
        assert!(transition_allowed(Running, Paused));
        assert!(!transition_allowed(Paused, Ready), "a paused job returns to running only");
        assert!(transition_allowed(Ready, Standby));
        assert!(!transition_allowed(Concluded, Running));
        assert!(verb_allowed(JobVerb::Complete, Standby));
        assert!(!verb_allowed(JobVerb::Complete, Running));
        assert!(!verb_allowed(JobVerb::Dismiss, Pending));
        assert!(verb_allowed(JobVerb::Cancel { force: false }, Pending));
        assert!(!verb_allowed(JobVerb::SetSpeed(1), Pending));
        assert_eq!(
            verb_error("cm1", Pending, JobVerb::Dismiss),
            "Job 'cm1' in state 'pending' cannot accept command verb 'dismiss'"
        );
    }
}
