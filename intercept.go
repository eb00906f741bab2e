package kcluster

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Intercepted is a request that reached a broker, as an Intercept hook sees
// it. Request is decoded at the version the client sent; hooks may read it
// but must not change it. Its byte-slice fields (record batches, group
// metadata) share the connection's read buffer, which later requests
// reuse: a hook that keeps one past its return keeps a copy (bytes.Clone).
type Intercepted struct {
	Broker  int32
	Request kmsg.Request
}

// Action tells the broker what to do with an intercepted request. The zero
// value serves it normally.
type Action struct {
	// Delay holds the request this long before the rest of the action
	// (or normal handling). Later requests on the same connection wait
	// behind it, as they would behind a slow request in Kafka.
	Delay time.Duration
	// Drop discards the request: no response is sent and the connection
	// stays open, so the client sees a timeout or a correlation mismatch.
	Drop bool
	// Close closes the connection without a response.
	Close bool
	// ErrorCode, if not zero, answers without handling the request: every
	// error code of a response mirroring the request (each topic and
	// partition) is set to it.
	ErrorCode int16
	// Response, if set, is sent instead of handling the request. It is
	// encoded at the request's version.
	Response kmsg.Response
}

// Intercept installs hook for requests of API key (-1: every key) reaching
// broker (0: every broker). Hooks run in installation order until one
// returns a non-zero Action. remove uninstalls it; it is safe to call more
// than once.
func (c *Cluster) Intercept(broker int32, key int16, hook func(Intercepted) Action) (remove func()) {
	c.mustEmbed("Intercept")
	return c.addIntercept(broker, key, hook, false)
}

// InterceptOnce is Intercept for a single request: the hook is removed
// after the first request it sees.
func (c *Cluster) InterceptOnce(broker int32, key int16, hook func(Intercepted) Action) (remove func()) {
	c.mustEmbed("InterceptOnce")
	return c.addIntercept(broker, key, hook, true)
}

type interceptor struct {
	broker int32
	key    int16
	hook   func(Intercepted) Action
	once   bool
}

// intercepts holds the installed hooks; a copy-on-write slice so the
// request path reads it without a lock held across hooks.
type intercepts struct {
	mu   sync.Mutex
	list []*interceptor
}

func (c *Cluster) addIntercept(broker int32, key int16, hook func(Intercepted) Action, once bool) func() {
	ic := &interceptor{broker: broker, key: key, hook: hook, once: once}
	c.icpt.mu.Lock()
	c.icpt.list = append(append([]*interceptor(nil), c.icpt.list...), ic)
	c.icpt.mu.Unlock()
	return func() { c.removeIntercept(ic) }
}

func (c *Cluster) removeIntercept(ic *interceptor) bool {
	c.icpt.mu.Lock()
	defer c.icpt.mu.Unlock()
	for i, x := range c.icpt.list {
		if x == ic {
			c.icpt.list = append(append([]*interceptor(nil), c.icpt.list[:i]...), c.icpt.list[i+1:]...)
			return true
		}
	}
	return false
}

// intercept runs the hooks for a request; ok is false when none acted.
func (c *Cluster) intercept(ctx context.Context, broker int32, req kmsg.Request) (kmsg.Response, error, bool) {
	c.icpt.mu.Lock()
	list := c.icpt.list
	c.icpt.mu.Unlock()
	for _, ic := range list {
		if (ic.broker != 0 && ic.broker != broker) || (ic.key != -1 && ic.key != req.Key()) {
			continue
		}
		if ic.once && !c.removeIntercept(ic) {
			continue // another request took it
		}
		a := ic.hook(Intercepted{Broker: broker, Request: req})
		if a == (Action{}) {
			continue
		}
		if a.Delay > 0 {
			t := time.NewTimer(a.Delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, errCloseConn, true
			}
		}
		switch {
		case a.Close:
			return nil, errCloseConn, true
		case a.Drop:
			return nil, errNoResponse, true
		case a.Response != nil:
			a.Response.SetVersion(req.GetVersion())
			return a.Response, nil, true
		case a.ErrorCode != 0:
			return errorResponse(req, a.ErrorCode), nil, true
		}
		return nil, nil, false // only a delay: handle normally
	}
	return nil, nil, false
}

// errorResponse builds the response to req with every error code set to
// code, mirroring the request's topics and partitions (by their identifying
// fields), as Kafka's error responses do.
func errorResponse(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	mirror(reflect.ValueOf(req).Elem(), reflect.ValueOf(resp).Elem(), code)
	return resp
}

// identity names the fields copied from a request element to its response
// element.
var identity = map[string]bool{"Topic": true, "TopicID": true, "Partition": true, "Name": true, "Group": true, "Key": true, "TransactionalID": true}

func mirror(src, dst reflect.Value, code int16) {
	for i := 0; i < dst.NumField(); i++ {
		f := dst.Type().Field(i)
		df := dst.Field(i)
		switch {
		case f.Name == "ErrorCode" && df.Kind() == reflect.Int16:
			df.SetInt(int64(code))
		case f.Name == "RecordBatches" && df.Kind() == reflect.Slice:
			df.SetBytes([]byte{})
		case df.Kind() == reflect.Int64 && (f.Name == "HighWatermark" || f.Name == "LastStableOffset" || f.Name == "LogStartOffset" || f.Name == "Offset" || f.Name == "BaseOffset" || f.Name == "ProducerID"):
			df.SetInt(-1)
		case f.Name == "Version":
		default:
			sf := src.FieldByName(f.Name)
			if !sf.IsValid() {
				continue
			}
			if identity[f.Name] && sf.Type() == df.Type() {
				df.Set(sf)
			} else if df.Kind() == reflect.Slice && sf.Kind() == reflect.Slice &&
				df.Type().Elem().Kind() == reflect.Struct && sf.Type().Elem().Kind() == reflect.Struct {
				out := reflect.MakeSlice(df.Type(), sf.Len(), sf.Len())
				for j := 0; j < sf.Len(); j++ {
					mirror(sf.Index(j), out.Index(j), code)
				}
				df.Set(out)
			}
		}
	}
}
