//! Load, attach and stream: the runner's last stage.
//! STUB: contract only.
