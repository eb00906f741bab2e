package kcluster

import "testing"

func TestBufPoolClasses(t *testing.T) {
	var p bufPool
	for _, n := range []int{1, minPooled - 1, minPooled, minPooled + 1, 3 << 20, 64 << 20, 64<<20 + 1} {
		b := p.get(n)
		if len(b) != n {
			t.Fatalf("get(%d): len %d", n, len(b))
		}
		c := class(n)
		switch pooled := n >= minPooled && c < numClasses; {
		case pooled && cap(b) != minPooled<<c:
			t.Fatalf("get(%d): cap %d, want its class's %d", n, cap(b), minPooled<<c)
		case pooled && c > 0 && minPooled<<(c-1) >= n:
			t.Fatalf("get(%d): class %d is not the smallest that holds it", n, c)
		case !pooled && cap(b) != n:
			t.Fatalf("get(%d) is not pooled but has cap %d", n, cap(b))
		}
		p.put(b)
	}
	if c := class(64<<20 + 1); c != numClasses {
		t.Fatalf("class of a buffer over 64 MiB: %d", c)
	}
}
