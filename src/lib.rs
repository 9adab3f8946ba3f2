//! goro facade
