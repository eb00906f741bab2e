package segment

// Kafka's CleanShutdownFileHandler (KIP-966): a broker that shuts down
// cleanly, every log synced and closed, leaves a file in its log dir
// naming its broker epoch; the next start reads and removes it, and
// registers with that epoch as PreviousBrokerEpoch. A crash or a power
// cut leaves no file (or a stale one), so the controller can tell a clean
// restart from an unclean one.

import (
	"encoding/json"
	"errors"
	"io"
	"os"
)

// cleanShutdownFile is the file's name, as Kafka's.
const cleanShutdownFile = ".kafka_cleanshutdown"

type cleanShutdown struct {
	Version     int   `json:"version"`
	BrokerEpoch int64 `json:"brokerEpoch"`
}

// WriteCleanShutdown records a clean shutdown during broker epoch epoch:
// the file is written and synced, then its directory. Call it after Close,
// once every log is synced and closed.
func (s *Store) WriteCleanShutdown(epoch int64) error {
	b, err := json.Marshal(cleanShutdown{Version: 0, BrokerEpoch: epoch})
	if err != nil {
		return err
	}
	f, err := s.fs.Create(s.fs.PathJoin(s.dir, cleanShutdownFile), "")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	return syncDir(s.fs, s.dir)
}

// TakeCleanShutdown reads and removes the clean shutdown file: it returns
// the broker epoch of the clean shutdown, or -1 if the last shutdown was
// not clean (no file, or one that cannot be read, as Kafka treats it).
func (s *Store) TakeCleanShutdown() (int64, error) {
	name := s.fs.PathJoin(s.dir, cleanShutdownFile)
	f, err := s.fs.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return -1, err
	}
	b, err := io.ReadAll(f)
	f.Close()
	epoch := int64(-1)
	var cs cleanShutdown
	if err == nil && json.Unmarshal(b, &cs) == nil && cs.Version == 0 {
		epoch = cs.BrokerEpoch
	}
	if err := s.fs.Remove(name); err != nil {
		return -1, err
	}
	return epoch, syncDir(s.fs, s.dir)
}
