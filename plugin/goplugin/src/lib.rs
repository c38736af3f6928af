//! go-plugin netrpc server.
