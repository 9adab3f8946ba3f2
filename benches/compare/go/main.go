// Command cmp-go is the Go peer of goro's comparison suite: every workload of
// benches/compare in one program, standard library only.
//
// Usage: cmp-go <workload> [--quick] [--n N] [--values V] [--secs S]
//
// It prints exactly one line on stdout,
// "RESULT <workload> <metric>=<value> [key=value ...]", and diagnostics on
// stderr. Default sizes and the seeded sleep durations mirror
// ../common/common.rs (the Rust peers' shared file): change both together.
// Go's runtime uses GOMAXPROCS = number of CPUs by default; nothing here
// changes it.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	timerMaxSleepUs = 50000 // largest timers sleep: 50 ms
	timerSeed       = 42
	mpmcProducers   = 4
	mpmcConsumers   = 4
	mpmcCap         = 128
	selectChannels  = 4
	mutexTasks      = 8
	echoMsg         = 64
)

var workloads = []string{"spawn", "pingpong", "chan_mpmc", "select", "mutex", "idle", "echo", "timers", "chain"}

// defaultN gives the (normal, quick) main size of each workload; see common.rs.
func defaultN(w string) (int, int) {
	switch w {
	case "spawn":
		return 100000, 1000
	case "pingpong":
		return 200000, 1000
	case "chan_mpmc", "select", "mutex":
		return 1000000, 10000
	case "idle", "timers":
		return 100000, 1000
	case "echo":
		return 100, 4
	case "chain":
		return 10000, 100
	}
	return 1, 1
}

type args struct {
	workload string
	quick    bool
	n        int
	values   int
	secs     float64
}

func parseArgs() args {
	usage := func(msg string) {
		fmt.Fprintf(os.Stderr, "error: %s\nusage: cmp-go <%s> [--quick] [--n N] [--values V] [--secs S]\n",
			msg, strings.Join(workloads, "|"))
		os.Exit(2)
	}
	if len(os.Args) < 2 {
		usage("missing workload")
	}
	a := args{workload: os.Args[1]}
	known := false
	for _, w := range workloads {
		known = known || w == a.workload
	}
	if !known {
		usage(fmt.Sprintf("unknown workload %q", a.workload))
	}
	fs := flag.NewFlagSet("cmp-go", flag.ContinueOnError)
	fs.BoolVar(&a.quick, "quick", false, "tiny sizes")
	fs.IntVar(&a.n, "n", 0, "main size of the workload (0 = default)")
	fs.IntVar(&a.values, "values", 0, "values pushed through chain (0 = default)")
	fs.Float64Var(&a.secs, "secs", 0, "seconds of load in echo (0 = default)")
	if err := fs.Parse(os.Args[2:]); err != nil || fs.NArg() != 0 || a.n < 0 || a.values < 0 || a.secs < 0 {
		usage("bad flags")
	}
	if a.n == 0 {
		normal, quick := defaultN(a.workload)
		a.n = normal
		if a.quick {
			a.n = quick
		}
	}
	if a.values == 0 {
		a.values = 100
		if a.quick {
			a.values = 10
		}
	}
	if a.secs == 0 {
		a.secs = 3
		if a.quick {
			a.secs = 0.3
		}
	}
	return a
}

// report builds the RESULT line.
type report struct{ b strings.Builder }

func newReport(workload, metric string, v float64) *report {
	r := &report{}
	fmt.Fprintf(&r.b, "RESULT %s %s=%s", workload, metric, fmtNum(v))
	return r
}

func (r *report) kv(k string, v interface{}) *report {
	fmt.Fprintf(&r.b, " %s=%v", k, v)
	return r
}

func (r *report) kf(k string, v float64) *report {
	fmt.Fprintf(&r.b, " %s=%s", k, fmtNum(v))
	return r
}

func (r *report) print() { fmt.Println(r.b.String()) }

func fmtNum(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a != a:
		return "nan"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', 5, 64)
}

func nsPer(d time.Duration, ops int) float64 {
	if ops < 1 {
		ops = 1
	}
	return float64(d.Nanoseconds()) / float64(ops)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sumBelow(per int) uint64 {
	p := uint64(per)
	if p == 0 {
		return 0
	}
	return p * (p - 1) / 2
}

// rssBytes reads VmRSS from /proc/self/status (0 if unreadable).
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line[len("VmRSS:"):])
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// splitMix64 is the same generator as common.rs's SplitMix64.
type splitMix64 struct{ s uint64 }

func (r *splitMix64) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func main() {
	a := parseArgs()
	switch a.workload {
	case "spawn":
		spawn(a)
	case "pingpong":
		pingpong(a)
	case "chan_mpmc":
		chanMpmc(a)
	case "select":
		selectWl(a)
	case "mutex":
		mutex(a)
	case "idle":
		idle(a)
	case "echo":
		echo(a)
	case "timers":
		timers(a)
	case "chain":
		chain(a)
	}
}

// spawn starts n goroutines that do nothing and waits for all (Go has no
// join handle: a WaitGroup is the idiomatic join).
func spawn(a args) {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(a.n)
	for i := 0; i < a.n; i++ {
		go wg.Done()
	}
	wg.Wait()
	el := time.Since(start)
	newReport("spawn", "ns_per_op", nsPer(el, a.n)).kv("n", a.n).print()
}

// pingpong bounces a counter between two goroutines over two unbuffered channels.
func pingpong(a args) {
	ping, pong := make(chan uint64), make(chan uint64)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	start := time.Now()
	v := uint64(0)
	for i := 0; i < a.n; i++ {
		ping <- v
		v = <-pong
	}
	el := time.Since(start)
	close(ping)
	newReport("pingpong", "ns_per_roundtrip", nsPer(el, a.n)).kv("n", a.n).kv("lost", uint64(a.n)-v).print()
}

// chanMpmc: 4 producers and 4 consumers share one channel of capacity 128.
func chanMpmc(a args) {
	per := a.n / mpmcProducers
	total := per * mpmcProducers
	ch := make(chan uint64, mpmcCap)
	var count, sum atomic.Uint64
	var prod, cons sync.WaitGroup
	start := time.Now()
	prod.Add(mpmcProducers)
	for p := 0; p < mpmcProducers; p++ {
		go func() {
			defer prod.Done()
			for i := 0; i < per; i++ {
				ch <- uint64(i)
			}
		}()
	}
	cons.Add(mpmcConsumers)
	for c := 0; c < mpmcConsumers; c++ {
		go func() {
			defer cons.Done()
			var k, s uint64
			for v := range ch {
				k++
				s += v
			}
			count.Add(k)
			sum.Add(s)
		}()
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	el := time.Since(start)
	want := sumBelow(per) * mpmcProducers
	newReport("chan_mpmc", "ns_per_msg", nsPer(el, total)).kv("n", total).
		kv("lost", uint64(total)-count.Load()).kv("sum_ok", boolInt(sum.Load() == want)).print()
}

// selectWl: one receiver selects over 4 unbuffered channels, one producer
// each; a closed channel is set to nil so its case is never chosen again.
func selectWl(a args) {
	per := a.n / selectChannels
	total := per * selectChannels
	var chs [selectChannels]chan uint64
	start := time.Now()
	for i := range chs {
		chs[i] = make(chan uint64)
		go func(c chan uint64) {
			for j := 0; j < per; j++ {
				c <- uint64(j)
			}
			close(c)
		}(chs[i])
	}
	c0, c1, c2, c3 := chs[0], chs[1], chs[2], chs[3]
	open := selectChannels
	var count, sum uint64
	timedOut := false
	limit := time.NewTimer(60 * time.Second)
	defer limit.Stop()
	for open > 0 && !timedOut {
		select {
		case v, ok := <-c0:
			if !ok {
				c0, open = nil, open-1
				continue
			}
			count, sum = count+1, sum+v
		case v, ok := <-c1:
			if !ok {
				c1, open = nil, open-1
				continue
			}
			count, sum = count+1, sum+v
		case v, ok := <-c2:
			if !ok {
				c2, open = nil, open-1
				continue
			}
			count, sum = count+1, sum+v
		case v, ok := <-c3:
			if !ok {
				c3, open = nil, open-1
				continue
			}
			count, sum = count+1, sum+v
		case <-limit.C:
			timedOut = true
		}
	}
	el := time.Since(start)
	want := sumBelow(per) * selectChannels
	r := newReport("select", "ns_per_msg", nsPer(el, int(count))).kv("n", total).kv("received", count).
		kv("lost", uint64(total)-count).kv("sum_ok", boolInt(sum == want || count != uint64(total)))
	if timedOut {
		r.kv("note", "timed_out")
	}
	r.print()
}

// mutex: 8 goroutines increment one counter under sync.Mutex.
func mutex(a args) {
	per := a.n / mutexTasks
	total := per * mutexTasks
	var mu sync.Mutex
	counter := 0
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(mutexTasks)
	for t := 0; t < mutexTasks; t++ {
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	mu.Lock()
	got := counter
	mu.Unlock()
	newReport("mutex", "ns_per_lock", nsPer(el, total)).kv("n", total).kv("lost", total-got).print()
}

// idle: n goroutines each blocked receiving on its own unbuffered channel;
// RSS growth per goroutine once all are parked.
func idle(a args) {
	n := a.n
	runtime.GC()
	debug.FreeOSMemory()
	before := rssBytes()
	chans := make([]chan uint64, n)
	var ready, done sync.WaitGroup
	var woke atomic.Uint64
	ready.Add(n)
	done.Add(n)
	for i := range chans {
		c := make(chan uint64)
		chans[i] = c
		go func() {
			defer done.Done()
			ready.Done()
			if _, ok := <-c; ok {
				woke.Add(1)
			}
		}()
	}
	ready.Wait()
	// Every goroutine has announced itself; give the last ones time to park.
	if a.quick {
		time.Sleep(10 * time.Millisecond)
	} else {
		time.Sleep(200 * time.Millisecond)
	}
	after := rssBytes()
	for _, c := range chans {
		c <- 1
	}
	done.Wait()
	diff := after - before
	if diff < 0 {
		diff = 0
	}
	newReport("idle", "bytes_per_task", float64(diff)/float64(n)).kv("n", n).
		kv("rss_before_kb", before/1024).kv("rss_after_kb", after/1024).kv("lost", uint64(n)-woke.Load()).print()
}

// echo: TCP echo over 127.0.0.1, a goroutine per connection on each side.
func echo(a args) {
	conns := a.n
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				buf := make([]byte, echoMsg)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}(c)
		}
	}()
	streams := make([]net.Conn, conns)
	for i := range streams {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		streams[i] = c
	}
	var reqs, errs atomic.Uint64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(time.Duration(a.secs * float64(time.Second)))
	wg.Add(conns)
	for id, c := range streams {
		go func(id int, c net.Conn) {
			defer wg.Done()
			defer c.Close()
			msg := make([]byte, echoMsg)
			back := make([]byte, echoMsg)
			var done, bad uint64
			for time.Now().Before(deadline) {
				tag := done ^ (uint64(id) << 40)
				for b := 0; b < 8; b++ {
					msg[b] = byte(tag >> (8 * b))
				}
				if _, err := c.Write(msg); err != nil {
					bad++
					break
				}
				if _, err := io.ReadFull(c, back); err != nil {
					bad++
					break
				}
				if !bytes.Equal(msg, back) {
					bad++
				}
				done++
			}
			reqs.Add(done)
			errs.Add(bad)
		}(id, c)
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	newReport("echo", "req_per_s", float64(reqs.Load())/el).kv("n", conns).kf("secs", el).
		kv("requests", reqs.Load()).kv("errors", errs.Load()).print()
}

// timers: n goroutines each sleep a seeded random 0-50 ms; lateness is
// measured from the moment each was spawned plus its sleep.
func timers(a args) {
	n := a.n
	rng := splitMix64{timerSeed}
	durs := make([]time.Duration, n)
	var ideal time.Duration
	for i := range durs {
		durs[i] = time.Duration(rng.next()%(timerMaxSleepUs+1)) * time.Microsecond
		if durs[i] > ideal {
			ideal = durs[i]
		}
	}
	late := make([]float64, n)
	var wg sync.WaitGroup
	var finished atomic.Uint64
	start := time.Now()
	wg.Add(n)
	for i, d := range durs {
		t0 := time.Now()
		go func(i int, d time.Duration, t0 time.Time) {
			defer wg.Done()
			time.Sleep(d)
			l := time.Since(t0) - d
			if l < 0 {
				l = 0
			}
			late[i] = float64(l.Nanoseconds()) / 1e6
			finished.Add(1)
		}(i, d, t0)
	}
	wg.Wait()
	wall := time.Since(start)
	sort.Float64s(late)
	rank := int(float64(n)*0.99 + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	wallMs := float64(wall.Nanoseconds()) / 1e6
	idealMs := float64(ideal.Nanoseconds()) / 1e6
	newReport("timers", "p99_late_ms", late[rank-1]).kf("max_late_ms", late[n-1]).kf("wall_ms", wallMs).
		kf("ideal_ms", idealMs).kf("overrun_ms", wallMs-idealMs).kv("n", n).
		kv("lost", uint64(n)-finished.Load()).print()
}

// chain: n goroutines in a line, each receiving from its left and sending +1
// to its right over unbuffered channels; values are pushed through it.
func chain(a args) {
	tasks, values := a.n, a.values
	first := make(chan uint64)
	left := first
	for i := 0; i < tasks; i++ {
		right := make(chan uint64)
		go func(l, r chan uint64) {
			for v := range l {
				r <- v + 1
			}
			close(r)
		}(left, right)
		left = right
	}
	last := left
	start := time.Now()
	go func() {
		for i := 0; i < values; i++ {
			first <- uint64(i)
		}
		close(first)
	}()
	good := 0
	for i := 0; i < values; i++ {
		v, ok := <-last
		if !ok {
			break
		}
		if v == uint64(i+tasks) {
			good++
		}
	}
	el := time.Since(start)
	hops := values * (tasks + 1)
	newReport("chain", "ns_per_hop", nsPer(el, hops)).kv("n", tasks).kv("values", values).kv("lost", values-good).print()
}
