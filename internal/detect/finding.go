package detect

import "time"

// Detector names (Finding.Detector).
const (
	DetectorRate   = "rate"        // request-rate anomaly against an endpoint baseline
	DetectorTiming = "timing"      // periodic inter-arrival times
	DetectorScrape = "scraping"    // many distinct resources at volume
	DetectorEnum   = "enumeration" // walks over object ids (BOLA probing)
	DetectorProbe  = "probing"     // 401/403/404 and undeclared-path ratios
	DetectorLogin  = "login"       // credential stuffing and brute force
	DetectorFlow   = "flow"        // business-flow rule violations
)

// Suggested risk levels for whoever turns scores into decisions. Detectors
// are calibrated so that one weak signal (a periodic client, a rate
// anomaly) stays below ChallengeScore or just above it, one strong signal
// (credential stuffing, a sequential id walk with failures) reaches
// BlockScore, and two independent moderate signals combine past it.
const (
	ChallengeScore = 50
	BlockScore     = 80
)

// Finding is one detector's conclusion about one key. Evidence and
// Thresholds are built for this finding and must not be modified: the
// risk aggregator keeps them.
type Finding struct {
	Detector string // one of the Detector* names
	Rule     string // the detector's rule that fired, e.g. "sequential"
	// Key is the identity key the finding is about: a client key
	// (ip:, net:, fp:, key:, sub:, dev:) or, for rules about an account,
	// user:<normalized username>.
	Key string
	// Score is the contribution to Key's risk, 0-100, before decay.
	Score      int
	Evidence   map[string]string // measured values ("failures": "31")
	Thresholds map[string]string // the thresholds they crossed
	Time       time.Time
}

// Reason is one finding as it contributes to a risk score now.
type Reason struct {
	Detector string
	Rule     string
	Key      string
	// Contribution is the finding's score decayed to the time of the
	// query (half-life RiskConfig.HalfLife).
	Contribution int
	Score        int // the finding's score when it was made
	Evidence     map[string]string
	Thresholds   map[string]string
	At           time.Time
}

func newFinding(det, rule, key string, score int, now int64, ev, th map[string]string) Finding {
	return Finding{
		Detector: det, Rule: rule, Key: key, Score: clampScore(score),
		Evidence: ev, Thresholds: th, Time: time.Unix(0, now),
	}
}
