package kcluster

import "time"

// consumerGroup is a KIP-848 consumer group's state.
type consumerGroup struct {
	state    string
	epoch    int32
	assignor string
	members  map[string]*cgMember
}

type cgMember struct {
	id                   string
	instanceID           *string
	clientID, clientHost string
	epoch, prevEpoch     int32
	topics               []string
	assigned             map[string][]int32
}

func (g *group) tickConsumerLocked(cp *coordPartition, now time.Time) time.Time { return time.Time{} }
