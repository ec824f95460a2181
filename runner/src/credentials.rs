//! Registry credentials in the docker `config.json` format, so `docker login` and
//! `skopeo login` credentials work, and ours work for them.
//! STUB: contract only.
