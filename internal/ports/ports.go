// Package ports finds and checks loopback ports for the processes the
// harnesses and the local stacks start (dev, chaos, bench, cluster).
package ports

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Free picks a free port on ip below Linux's ephemeral range (32768–60999),
// where the kernel does not hand ports to outgoing connections, so that the
// port is far less likely to be taken before the process it is for binds it.
func Free(ip string) (int, error) {
	for range 50 {
		p := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p))); err == nil {
			_ = l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Claim checks that port (or, for a negative port, any port) is free on ip
// and returns it; what names the port in the error ("Temporal frontend").
// The check and the owner's bind are not atomic, but it turns the common
// case — another stack running on the same port — into a clear message.
func Claim(ip string, port int, what string) (int, error) {
	if port < 0 {
		return Free(ip)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("%s port %d on %s is taken: %w", what, port, ip, err)
	}
	_ = l.Close()
	return port, nil
}
