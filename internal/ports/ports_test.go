package ports_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"ordersaga/internal/ports"
)

func TestClaimNamesATakenPortAndFreeFindsOne(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	if _, err := ports.Claim("127.0.0.1", taken, "Temporal frontend"); err == nil ||
		!strings.Contains(err.Error(), "Temporal frontend port "+strconv.Itoa(taken)+" on 127.0.0.1 is taken") {
		t.Fatalf("claim of a taken port: %v", err)
	}
	p, err := ports.Claim("127.0.0.1", -1, "any")
	if err != nil || p == taken {
		t.Fatalf("claim of any port: %d %v", p, err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("the port given is not free: %v", err)
	}
	free.Close()
}
