package server

import "fmt"

// OptionError is an error of Options.Validate about one setting, so that a
// caller that took the setting from elsewhere (the CLI, from its flags)
// can say where to fix it.
type OptionError struct {
	// Field is the Options field at fault: "PostgresURL",
	// "PostgresAdminURL", "PostgresDatabasePrefix" or "Shards".
	Field string
	// Shard names the shard at fault, for Field "Shards" ("" for all of
	// them); Admin says whether its AdminURL is at fault rather than its
	// URL.
	Shard string
	Admin bool
	// Replica says whether the shard's ReplicaURL is at fault.
	Replica bool
	// Err says what is wrong.
	Err error
}

func (e *OptionError) Error() string {
	switch {
	case e.Field == "Shards" && e.Shard != "" && e.Replica:
		return fmt.Sprintf("Options.Shards: shard %q ReplicaURL: %v", e.Shard, e.Err)
	case e.Field == "Shards" && e.Shard != "" && e.Admin:
		return fmt.Sprintf("Options.Shards: shard %q AdminURL: %v", e.Shard, e.Err)
	case e.Field == "Shards" && e.Shard != "":
		return fmt.Sprintf("Options.Shards: shard %q: %v", e.Shard, e.Err)
	}
	return fmt.Sprintf("Options.%s: %v", e.Field, e.Err)
}

// Unwrap returns Err.
func (e *OptionError) Unwrap() error { return e.Err }
