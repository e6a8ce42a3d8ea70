//! The golden root: what k8r adds to and changes in the vendor's root
//! filesystem. The generators here are pure (text in, text out); the build
//! step turns them into one debugfs script applied to the root image.

pub mod accounts;
pub mod edits;
pub mod fstab;
pub mod root;
pub mod system;
