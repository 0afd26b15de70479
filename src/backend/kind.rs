//! The one enum of backends. The scheme list, the location parser, the declarations and
//! the chooser ([`super::open`]) all derive from it: a new backend is its file, one
//! variant here (with its declaration and Cargo feature) and one arm in `open`.

use super::settings::Declared;

/// Every backend restic has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Local,
    Sftp,
    Rest,
    S3,
    B2,
    Azure,
    Gs,
    Swift,
    Rclone,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Local,
        Kind::Sftp,
        Kind::Rest,
        Kind::S3,
        Kind::B2,
        Kind::Azure,
        Kind::Gs,
        Kind::Swift,
        Kind::Rclone,
    ];

    /// What the backend's file says about itself.
    pub fn declared(self) -> &'static Declared {
        match self {
            Kind::Local => &super::local::DECLARED,
            Kind::Sftp => &super::sftp::DECLARED,
            Kind::Rest => &super::rest::DECLARED,
            Kind::S3 => &super::s3::DECLARED,
            Kind::B2 => &super::b2::DECLARED,
            Kind::Azure => &super::azure::DECLARED,
            Kind::Gs => &super::gcs::DECLARED,
            Kind::Swift => &super::swift::DECLARED,
            Kind::Rclone => &super::rclone::DECLARED,
        }
    }

    /// restic's scheme (`s3` of `s3:host/bucket`).
    pub fn scheme(self) -> &'static str {
        self.declared().scheme
    }

    /// Whether this build has the backend's client (its Cargo feature).
    pub fn built(self) -> bool {
        match self {
            Kind::Local | Kind::Rest | Kind::Rclone => true,
            Kind::Sftp => cfg!(feature = "sftp"),
            Kind::S3 => cfg!(feature = "s3"),
            Kind::B2 => cfg!(feature = "b2"),
            Kind::Azure => cfg!(feature = "azure"),
            Kind::Gs => cfg!(feature = "gcs"),
            Kind::Swift => cfg!(feature = "swift"),
        }
    }

    /// The schemes this build reads, for messages.
    pub fn in_this_build() -> Vec<&'static str> {
        Kind::ALL
            .into_iter()
            .filter(|k| k.built())
            .map(Kind::scheme)
            .collect()
    }

    /// The backend a `scheme:` prefix names (`local:` included).
    pub fn of_scheme(scheme: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.scheme() == scheme)
    }
}
