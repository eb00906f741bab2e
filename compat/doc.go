// Package compat holds client-compatibility tests for kcluster: each test
// starts a cluster (in process, or cmd/kcluster as a child process) and
// drives it with a real Kafka client — franz-go, sarama, segmentio/kafka-go,
// kcat (librdkafka) — checking what the client gets back, not merely that it
// did not fail.
//
// It is a module of its own so the clients stay out of the library's
// dependencies. Run it with:
//
//	cd compat && go vet ./... && go test -race -count=1 ./...
//
// The kcat test needs the kcat binary (apt-get install -y kcat) and fails
// without it.
package compat
