package kcluster

import "time"

// compact runs the log cleaner on this replica when its topic is
// compacted.
func (r *replica) compact(now time.Time, force bool) error { return nil }
