package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkDecodeProduce measures what a broker does with a produce
// request frame before its handler runs: read the frame, parse the header
// and decode the body with kmsg (the 6 × 256 KiB of record batches are
// left in place, not copied).
func BenchmarkDecodeProduce(b *testing.B) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(11)
	req.Acks, req.TimeoutMillis = -1, 10000
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	for p := range int32(6) {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = make([]byte, 256<<10)
		for i := range rp.Records {
			rp.Records[i] = byte(rng.Uint32())
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	frame := AppendRequest(nil, 1, "bench", req)
	b.SetBytes(int64(len(frame)))
	var buf []byte
	r := bytes.NewReader(frame)
	b.ResetTimer()
	for range b.N {
		r.Reset(frame)
		f, err := ReadFrame(r, buf, 100<<20)
		if err != nil {
			b.Fatal(err)
		}
		buf = f
		h, body, err := ParseRequestHeader(f)
		if err != nil {
			b.Fatal(err)
		}
		got, err := DecodeRequest(h, body)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(got.(*kmsg.ProduceRequest).Topics[0].Partitions); n != 6 {
			b.Fatalf("%d partitions decoded", n)
		}
	}
}
