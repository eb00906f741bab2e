//go:build unix

package network

import (
	"io"
	"net"
	"syscall"
)

// reservePort binds a TCP socket to a's port without listening on it,
// with SO_REUSEADDR so that the closed listener's connections in TIME_WAIT
// do not refuse it and a later listener can bind beside it.
func reservePort(a *net.TCPAddr) (io.Closer, error) {
	family := syscall.AF_INET
	var sa syscall.Sockaddr
	if ip4 := a.IP.To4(); ip4 != nil {
		s := &syscall.SockaddrInet4{Port: a.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = syscall.AF_INET6
		s := &syscall.SockaddrInet6{Port: a.Port}
		copy(s.Addr[:], a.IP.To16())
		sa = s
	}
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return fdCloser(fd), nil
}

type fdCloser int

func (f fdCloser) Close() error { return syscall.Close(int(f)) }
