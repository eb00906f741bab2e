package kcluster

// Kafka's LogValidator, the record checks of a produced batch: on a
// compacted topic every record needs a key (INVALID_RECORD); on a
// CreateTime topic every record's timestamp must lie within
// message.timestamp.before.max.ms before and message.timestamp.after.max.ms
// after now (INVALID_TIMESTAMP; KIP-937); a producer may not set the
// LogAppendTime type. A batch with refused records is refused whole, and
// the refusal names them (KIP-467): each record's index in its batch and
// why, which Produce v8+ answers in the partition's ErrorRecords and
// ErrorMessage, so a client can fail those records and send the others
// again.

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kcluster/kcluster/segment"
)

// recordError is one refused record: its index in its batch and why
// (Kafka's ProduceResponse.RecordError).
type recordError struct {
	index int32
	msg   string
}

// recordErrors refuses a batch for some of its records (Kafka's
// RecordValidationException): INVALID_TIMESTAMP when a timestamp is among
// the reasons, else INVALID_RECORD, with Kafka's message.
type recordErrors struct {
	err     *kerr.Error
	records []recordError
	msg     string
}

func (e *recordErrors) Error() string { return e.msg }
func (e *recordErrors) Unwrap() error { return e.err }

// newRecordErrors is Kafka's LogValidator.processRecordErrors.
func newRecordErrors(errs []recordError, timestamp bool) *recordErrors {
	if timestamp {
		return &recordErrors{kerr.InvalidTimestamp, errs, "One or more records have been rejected due to invalid timestamp"}
	}
	shown := make([]string, 0, 3)
	for _, e := range errs[:min(len(errs), 3)] {
		shown = append(shown, fmt.Sprintf("RecordError(batchIndex=%d, message='%s')", e.index, e.msg))
	}
	return &recordErrors{kerr.InvalidRecord, errs, fmt.Sprintf("One or more records have been rejected due to %d record errors in total, and only showing the first three errors at most: [%s]",
		len(errs), strings.Join(shown, ", "))}
}

// validateRecordsLocked applies the topic's configs to the records of one
// produced batch (h its header), at now (ms). Control batches are the
// coordinators' and pass. Records are decoded only when some check
// applies.
func (r *partition) validateRecordsLocked(batch []byte, h segment.BatchHeader, now int64) error {
	lc := r.mu.lc
	if h.IsControl() {
		return nil
	}
	createTime := !lc.logAppendTime
	bounded := createTime && (lc.tsBeforeMax < math.MaxInt64 || lc.tsAfterMax < math.MaxInt64)
	batchLogAppendTime := h.Attributes&0x08 != 0
	if !lc.cleanupCompact && !bounded && !batchLogAppendTime {
		return nil
	}
	_, recs, err := segment.BatchRecords(batch, nil)
	if err != nil {
		return kerr.CorruptMessage
	}
	tp := r.topic + "-" + strconv.Itoa(int(r.part))
	var errs []recordError
	timestamp := false
	for i, rec := range recs {
		ts := rec.Timestamp
		if batchLogAppendTime {
			ts = h.MaxTimestamp
		}
		switch {
		case lc.cleanupCompact && rec.Key == nil:
			errs = append(errs, recordError{int32(i), "Compacted topic cannot accept message without key in topic partition " + tp})
		case createTime && ts != -1:
			if diff := now - ts; diff > lc.tsBeforeMax || -diff > lc.tsAfterMax {
				timestamp = true
				errs = append(errs, recordError{int32(i), fmt.Sprintf("Timestamp %d of message with offset %d is out of range. The timestamp should be within [%d, %d]",
					ts, rec.Offset, now-lc.tsBeforeMax, now+lc.tsAfterMax)})
			}
		case batchLogAppendTime:
			timestamp = true
			errs = append(errs, recordError{int32(i), fmt.Sprintf("Invalid timestamp type in message with offset %d. Producer should not set timestamp type to LogAppendTime.", rec.Offset)})
		}
	}
	if len(errs) > 0 {
		return newRecordErrors(errs, timestamp)
	}
	return nil
}
