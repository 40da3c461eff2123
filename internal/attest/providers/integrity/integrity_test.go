package integrity

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

func TestAnswerMatchesIndependentHMAC(t *testing.T) {
	bin := make([]byte, 100_000)
	_, _ = rand.Read(bin)
	salt, ranges, err := NewChallenge(int64(len(bin)))
	if err != nil {
		t.Fatal(err)
	}
	if !Valid(ranges, int64(len(bin))) {
		t.Fatalf("own challenge invalid: %+v", ranges)
	}
	got, err := Answer(salt, ranges, bytes.NewReader(bin), int64(len(bin)))
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, salt)
	var parts [][]byte
	for _, r := range ranges {
		m.Write(bin[r.Offset : r.Offset+r.Length])
		parts = append(parts, bin[r.Offset:r.Offset+r.Length])
	}
	if want := m.Sum(nil); !Equal(got, want) {
		t.Fatal("Answer differs from HMAC over the ranges")
	}
	if !Equal(AnswerFromParts(salt, parts), got) {
		t.Fatal("AnswerFromParts differs from Answer")
	}
	// A flipped byte inside a range changes the answer.
	tampered := bytes.Clone(bin)
	tampered[ranges[3].Offset+ranges[3].Length/2] ^= 1
	bad, _ := Answer(salt, ranges, bytes.NewReader(tampered), int64(len(bin)))
	if Equal(bad, got) {
		t.Fatal("tampered binary gives the same answer")
	}
}

func TestChallengeRanges(t *testing.T) {
	for _, size := range []int64{MinSize, 5000, 1 << 20, 50 << 20} {
		_, ranges, err := NewChallenge(size)
		if err != nil {
			t.Fatal(err)
		}
		want := min(int64(MaxRangeLength), size/RangeCount)
		for _, r := range ranges {
			if r.Length != want || r.Offset < 0 || r.Offset+r.Length > size {
				t.Fatalf("size %d: bad range %+v", size, r)
			}
		}
	}
	if _, _, err := NewChallenge(MinSize - 1); err == nil {
		t.Fatal("tiny binary accepted")
	}
}

func TestValidRefuses(t *testing.T) {
	ok := make([]Range, RangeCount)
	for i := range ok {
		ok[i] = Range{Offset: int64(i) * 10, Length: 10}
	}
	cases := map[string]func([]Range) []Range{
		"too few":     func(r []Range) []Range { return r[:RangeCount-1] },
		"negative":    func(r []Range) []Range { r[0].Offset = -1; return r },
		"past end":    func(r []Range) []Range { r[1].Offset = 995; return r },
		"zero length": func(r []Range) []Range { r[2].Length = 0; return r },
		"too long":    func(r []Range) []Range { r[2].Length = MaxRangeLength + 1; return r },
	}
	if !Valid(ok, 1000) {
		t.Fatal("valid ranges refused")
	}
	for name, mutate := range cases {
		if Valid(mutate(append([]Range(nil), ok...)), 1000) {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Answer(nil, []Range{{Offset: 990, Length: 20}}, bytes.NewReader(make([]byte, 1000)), 1000); err == nil {
		t.Error("Answer read past the end")
	}
}
