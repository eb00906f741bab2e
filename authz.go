package kcluster

import "github.com/twmb/franz-go/pkg/kmsg"

func (b *broker) authorizeAndHandle(h handler, r *request) (kmsg.Response, error) {
	return h.fn(b, r)
}
