package events

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

type discardSink struct{}

func (discardSink) Name() string                         { return "discard" }
func (discardSink) Write(context.Context, []Event) error { return nil }

var quiet = slog.New(slog.DiscardHandler)

func benchEvent() Event {
	e := fullEvent()
	e.Attrs = nil // attrs would be built by the caller, not by Publish
	return e
}

// reportDrops shows how much of the benchmark's burst the sink missed: a
// tight Publish loop outruns any worker, so drops are expected and cheap.
func reportDrops(b *testing.B, bus *Bus) {
	b.StopTimer()
	b.ReportMetric(float64(bus.Dropped())/float64(b.N), "drops/op")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = bus.Close(ctx)
}

func BenchmarkPublish(b *testing.B) {
	bus := NewBus(BusOptions{Logger: quiet})
	bus.AddSink(discardSink{}, nil)
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(e)
	}
	reportDrops(b, bus)
}

// BenchmarkPublishNoDrops times only successful enqueues: it pauses the
// clock whenever the queue is half full and lets the worker drain it, so
// that a tight loop outrunning the worker does not mix in the (cheaper)
// drop path.
func BenchmarkPublishNoDrops(b *testing.B) {
	bus := NewBus(BusOptions{Logger: quiet})
	bus.AddSink(discardSink{}, nil)
	e := benchEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%(defaultQueueSize/2) == 0 {
			b.StopTimer()
			for bus.QueueDepth() > 0 {
				time.Sleep(100 * time.Microsecond)
			}
			b.StartTimer()
		}
		bus.Publish(e)
	}
	b.StopTimer()
	if bus.Dropped() != 0 {
		b.Fatalf("%d drops", bus.Dropped())
	}
	reportDrops(b, bus)
}

func BenchmarkPublishAccept(b *testing.B) {
	bus := NewBus(BusOptions{Logger: quiet})
	bus.AddSink(discardSink{}, func(e *Event) bool { return e.Kind != KindRequest })
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(e)
	}
	reportDrops(b, bus)
}

// BenchmarkPublishFull is the cost when the sink's queue is full: the path
// an overloaded gateway takes for every event.
func BenchmarkPublishFull(b *testing.B) {
	stuck := &stuckSink{release: make(chan struct{}), entered: make(chan struct{})}
	defer close(stuck.release)
	bus := NewBus(BusOptions{QueueSize: 1, Logger: quiet})
	bus.AddSink(stuck, nil)
	e := benchEvent()
	bus.Publish(e)
	<-stuck.entered
	bus.Publish(e)
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(e)
	}
	b.StopTimer()
	b.ReportMetric(float64(bus.Dropped())/float64(b.N), "drops/op")
}

func BenchmarkPublishParallel(b *testing.B) {
	bus := NewBus(BusOptions{Logger: quiet})
	bus.AddSink(discardSink{}, nil)
	e := benchEvent()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bus.Publish(e)
		}
	})
	reportDrops(b, bus)
}

func BenchmarkPublishTwoSinks(b *testing.B) {
	bus := NewBus(BusOptions{Logger: quiet})
	bus.AddSink(discardSink{}, func(e *Event) bool { return e.Kind != KindRequest })
	bus.AddSink(discardSink{}, nil)
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(e)
	}
	reportDrops(b, bus)
}

// benchmarkStoreWrite writes batches of 512 realistic events and reports
// events per second.
func benchmarkStoreWrite(b *testing.B, s Store) {
	const batchSize = 512
	batch := make([]Event, batchSize)
	for i := range batch {
		batch[i] = fullEvent()
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkSQLiteWrite(b *testing.B) {
	s, err := OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchmarkStoreWrite(b, s)
}

func BenchmarkPostgresWrite(b *testing.B) {
	open := backends[1].location(b)
	s, err := open()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchmarkStoreWrite(b, s)
}
