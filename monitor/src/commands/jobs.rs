//! Job commands: the `block-job-*` verbs (jobs named by `device`, the job id; unknown ids are
//! `Block job 'x' not found`, class DeviceNotActive), the generic `job-*` verbs (unknown ids are
//! GenericError `Job not found`), `query-block-jobs` and `query-jobs`.

use std::sync::Arc;

use super::block::{call, call_kick};
use crate::Monitor;
use crate::block::types::*;
use crate::block::{BlockRequest, JobApi, JobVerb};
use crate::error::QmpError;
use crate::qapi::Empty;
use crate::registry::{Flags, Registry};

async fn verb(m: &Monitor, id: String, api: JobApi, verb: JobVerb) -> Result<Empty, QmpError> {
    call_kick(m, |reply| BlockRequest::Job { id, api, verb, reply }).await
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("block-job-set-speed", Flags::default(), |m: Arc<Monitor>, a: BlockJobSetSpeedArgs| async move {
        verb(&m, a.device, JobApi::Block, JobVerb::SetSpeed(a.speed)).await
    });
    reg.add("block-job-cancel", Flags::default(), |m: Arc<Monitor>, a: BlockJobCancelArgs| async move {
        let force = a.force.unwrap_or(false);
        verb(&m, a.device, JobApi::Block, JobVerb::Cancel { force }).await
    });
    reg.add("block-job-pause", Flags::default(), |m: Arc<Monitor>, a: BlockJobDeviceArgs| async move {
        verb(&m, a.device, JobApi::Block, JobVerb::Pause).await
    });
    reg.add("block-job-resume", Flags::default(), |m: Arc<Monitor>, a: BlockJobDeviceArgs| async move {
        verb(&m, a.device, JobApi::Block, JobVerb::Resume).await
    });
    reg.add("block-job-complete", Flags::default(), |m: Arc<Monitor>, a: BlockJobDeviceArgs| async move {
        verb(&m, a.device, JobApi::Block, JobVerb::Complete).await
    });
    reg.add("block-job-dismiss", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Block, JobVerb::Dismiss).await
    });
    reg.add("block-job-finalize", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Block, JobVerb::Finalize).await
    });
    reg.add("query-block-jobs", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<Vec<BlockJobInfo>, QmpError>(call(&m, |reply| BlockRequest::QueryBlockJobs { reply }).await?)
    });
    reg.add("job-pause", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Generic, JobVerb::Pause).await
    });
    reg.add("job-resume", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Generic, JobVerb::Resume).await
    });
    // QEMU's job-cancel always force-cancels (a ready job does not complete).
    reg.add("job-cancel", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Generic, JobVerb::Cancel { force: true }).await
    });
    reg.add("job-complete", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Generic, JobVerb::Complete).await
    });
    reg.add("job-dismiss", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Generic, JobVerb::Dismiss).await
    });
    reg.add("job-finalize", Flags::default(), |m: Arc<Monitor>, a: JobIdArgs| async move {
        verb(&m, a.id, JobApi::Generic, JobVerb::Finalize).await
    });
    reg.add("query-jobs", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<Vec<JobInfo>, QmpError>(call(&m, |reply| BlockRequest::QueryJobs { reply }).await?)
    });
}
