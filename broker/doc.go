// Package broker owns what secrets-broker does with keys and secrets once the
// command line or configuration has been read: it resolves key specs into key
// wrappers, seals and opens values and secrets files, and (in later parts)
// fetches, renders and refreshes secrets. Commands in cmd/ only parse flags
// and call it.
package broker
