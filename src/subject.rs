//! What a case measures: a channel mechanism or a synchronisation primitive, one type with
//! the capabilities workloads choose by, its id and its family.

#![forbid(unsafe_code)]

use crate::backends::sync::Primitive;
use crate::backends::{Family, Mechanism};
use crate::workload::Capabilities;

#[derive(Clone, Copy)]
pub enum Subject {
    Channel(&'static dyn Mechanism),
    Sync(&'static dyn Primitive),
}

impl From<&'static dyn Mechanism> for Subject {
    fn from(m: &'static dyn Mechanism) -> Subject {
        Subject::Channel(m)
    }
}

impl From<&'static dyn Primitive> for Subject {
    fn from(p: &'static dyn Primitive) -> Subject {
        Subject::Sync(p)
    }
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Subject {
    pub fn id(&self) -> &'static str {
        match self {
            Subject::Channel(m) => m.info().id,
            Subject::Sync(p) => p.info().id,
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Subject::Channel(m) => m.info().family,
            Subject::Sync(_) => Family::Sync,
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Subject::Channel(m) => {
                let i = m.info();
                Capabilities {
                    reliable_channel: !i.lossy,
                    lossy_channel: i.lossy,
                    streams: m.streams(),
                    duplex: m.duplex(),
                    ..Default::default()
                }
            }
            Subject::Sync(p) => Capabilities {
                handoff: p.info().handoff,
                lock: p.info().lock,
                ..Default::default()
            },
        }
    }

    /// Whether this subject runs workload `w` at all.
    pub fn runs(&self, w: &dyn crate::workload::Workload) -> bool {
        w.applies(&self.capabilities())
    }

    /// Any registered subject by id: mechanisms first, then primitives.
    pub fn by_id(id: &str) -> Option<Subject> {
        crate::backends::by_id(id)
            .map(Subject::Channel)
            .or_else(|| crate::backends::sync::by_id(id).map(Subject::Sync))
    }

    /// Everything `all` stands for, in registry order.
    pub fn all() -> impl Iterator<Item = Subject> {
        crate::backends::all().map(Subject::Channel).chain(
            crate::backends::sync::REGISTRY
                .iter()
                .filter(|p| !p.info().hidden)
                .map(|p| Subject::Sync(*p)),
        )
    }
}
