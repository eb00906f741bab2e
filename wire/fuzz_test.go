package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary bytes through what a broker does with a
// connection's input: ReadFrame, ParseRequestHeader, DecodeRequest. None of
// them may panic; errors are expected. A body that decodes must re-encode
// without panicking either, since handlers answer from the decoded request.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range requestSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		frame, err := ReadFrame(bytes.NewReader(in), nil, 1<<20)
		if err != nil {
			return
		}
		h, body, err := ParseRequestHeader(frame)
		if err != nil {
			if !errors.Is(err, ErrBadHeader) {
				t.Fatalf("ParseRequestHeader error %v is not ErrBadHeader", err)
			}
			return
		}
		req, err := DecodeRequest(h, body)
		if err != nil {
			return
		}
		if req.Key() != h.Key || req.GetVersion() != h.Version {
			t.Fatalf("decoded %s v%d from header %+v", kmsg.NameForKey(req.Key()), req.GetVersion(), h)
		}
		req.AppendTo(nil)
	})
}

// requestSeeds are well-formed request frames (size prefix included) for a
// spread of keys and header versions, plus the crafted tag-count request of
// TestDecodeRequestRefusesHugeTagCountFast.
func requestSeeds() [][]byte {
	var seeds [][]byte
	add := func(req kmsg.Request, v int16) {
		req.SetVersion(v)
		seeds = append(seeds, AppendRequest(nil, 7, "seed", req))
	}
	md := kmsg.NewPtrMetadataRequest()
	topic := kmsg.NewMetadataRequestTopic()
	topic.Topic = kmsg.StringPtr("t")
	md.Topics = append(md.Topics, topic)
	add(md, 4)
	md = kmsg.NewPtrMetadataRequest()
	md.Topics = append(md.Topics, topic)
	add(md, 12)
	add(kmsg.NewPtrApiVersionsRequest(), 0)
	add(kmsg.NewPtrApiVersionsRequest(), 3)
	fetch := kmsg.NewPtrFetchRequest()
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.FetchOffset = 5
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	add(fetch, 11)
	add(fetch, 13)
	prod := kmsg.NewPtrProduceRequest()
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "t"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = []byte{0, 1, 2, 3}
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)
	add(prod, 7)
	add(prod, 9)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group = "g"
	ot := kmsg.NewOffsetCommitRequestTopic()
	ot.Topic = "t"
	op := kmsg.NewOffsetCommitRequestTopicPartition()
	op.Offset = 3
	ot.Partitions = append(ot.Partitions, op)
	oc.Topics = append(oc.Topics, ot)
	add(oc, 8)
	add(kmsg.NewPtrControlledShutdownRequest(), 0)
	add(kmsg.NewPtrJoinGroupRequest(), 9)
	seeds = append(seeds, sized(hugeTagCountRequest()))
	return seeds
}

// hugeTagCountRequest is an ApiVersions v3 request frame (no size prefix)
// whose body claims 2^32-1 tagged fields in 5 bytes.
func hugeTagCountRequest() []byte {
	return []byte{
		0, 18, 0, 3, 0, 0, 0, 1, // ApiVersions v3, correlation id 1
		0xff, 0xff, 0, // null client id, no header tags
		1, 1, // client software name "", version ""
		0xff, 0xff, 0xff, 0xff, 0x0f, // tag count 2^32-1
	}
}

func sized(frame []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)
}

// TestDecodeRequestRefusesHugeTagCountFast is the hazard in DESIGN.md: kmsg
// before v1.15.1 kept counting down a tag count after its reader failed,
// so these 18 bytes held a connection goroutine for about a minute. kmsg
// v1.15.1 stops at the first failed read; the bound here is generous (the
// decode takes microseconds) so that only the old behaviour fails it.
func TestDecodeRequestRefusesHugeTagCountFast(t *testing.T) {
	h, body, err := ParseRequestHeader(hugeTagCountRequest())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = DecodeRequest(h, body)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("decode took %v", took)
	}
	if err == nil {
		t.Fatal("a body claiming 2^32-1 tagged fields in 5 bytes decoded")
	}
}
