//go:build !unix

package network

import (
	"errors"
	"io"
	"net"
)

// reservePort is not done off unix: a restart may then lose its port.
func reservePort(*net.TCPAddr) (io.Closer, error) { return nil, errors.ErrUnsupported }
