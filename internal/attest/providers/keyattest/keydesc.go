package keyattest

import (
	"encoding/asn1"
	"strconv"
)

// OIDKeyDescription is the X.509 extension carrying the KeyDescription.
var OIDKeyDescription = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}

// SecurityLevel says where a key lives and who produced the attestation.
// The order is meaningful: Software < TrustedEnvironment < StrongBox.
type SecurityLevel int

const (
	Software           SecurityLevel = 0
	TrustedEnvironment SecurityLevel = 1
	StrongBox          SecurityLevel = 2
)

func (l SecurityLevel) String() string {
	switch l {
	case Software:
		return "software"
	case TrustedEnvironment:
		return "tee"
	case StrongBox:
		return "strongbox"
	}
	return "SecurityLevel(" + strconv.Itoa(int(l)) + ")"
}

// BootState is the verified-boot state reported in RootOfTrust.
type BootState int

const (
	Verified   BootState = 0
	SelfSigned BootState = 1
	Unverified BootState = 2
	Failed     BootState = 3
)

func (s BootState) String() string {
	switch s {
	case Verified:
		return "verified"
	case SelfSigned:
		return "self_signed"
	case Unverified:
		return "unverified"
	case Failed:
		return "failed"
	}
	return "BootState(" + strconv.Itoa(int(s)) + ")"
}

// Values of AuthorizationList fields a policy may want to compare against.
const (
	PurposeSign      = 2
	PurposeVerify    = 3
	PurposeAttestKey = 7
	AlgorithmRSA     = 1
	AlgorithmEC      = 3
	OriginGenerated  = 0
	OriginImported   = 2
)

// KeyDescription is the parsed attestation extension.
type KeyDescription struct {
	AttestationVersion       int // 1,2,3,4 (Keymaster), 100,200,300,400 (KeyMint)
	AttestationSecurityLevel SecurityLevel
	KeymasterVersion         int
	KeymasterSecurityLevel   SecurityLevel
	Challenge                []byte
	UniqueID                 []byte
	Software, Hardware       AuthorizationList
}

// AuthorizationList holds the fields of one enforcement list that a policy
// can use. Unknown tags are skipped. Integer fields are 0 when absent, except
// Origin which is -1 (0 means GENERATED).
type AuthorizationList struct {
	Purposes         []int // [1]
	Algorithm        int   // [2]
	KeySize          int   // [3]
	Digests          []int // [5]
	ECCurve          int   // [10]
	NoAuthRequired   bool  // [503]
	CreationDateTime int64 // [701], ms since the epoch
	Origin           int   // [702]
	RootOfTrust      *RootOfTrust
	OSVersion        int // [705], e.g. 90000
	OSPatchLevel     int // [706], YYYYMM
	ApplicationID    *ApplicationID
	VendorPatchLevel int // [718], YYYYMMDD
	BootPatchLevel   int // [719], YYYYMMDD
}

// RootOfTrust is the [704] field; only meaningful in the hardware list.
type RootOfTrust struct {
	VerifiedBootKey   []byte
	DeviceLocked      bool
	VerifiedBootState BootState
	VerifiedBootHash  []byte // attestation version >= 3
}

// ApplicationID is the decoded attestationApplicationId [709]: every package
// sharing the key owner's UID, and the SHA-256 digests of their signing
// certificates.
type ApplicationID struct {
	Packages         []Package
	SignatureDigests [][]byte
}

// Package is one AttestationPackageInfo.
type Package struct {
	Name    string
	Version int64
}

func malformed(detail string) error { return &Error{Reason: ReasonMalformed, Detail: detail} }

// ParseKeyDescription parses the DER value of the 1.3.6.1.4.1.11129.2.1.17
// extension. It does not authenticate anything: only Verify does. The result
// does not alias extValue.
func ParseKeyDescription(extValue []byte) (*KeyDescription, error) {
	// One copy up front so returned byte slices never alias caller memory.
	buf := append([]byte(nil), extValue...)
	seq, rest, ok := readUniversal(buf, tagSequence, true)
	if !ok || len(rest) != 0 {
		return nil, malformed("key description is not a single DER SEQUENCE")
	}
	kd := new(KeyDescription)
	var v int64
	if v, seq, ok = readInt(seq, tagInteger); !ok || !fitsInt(v) {
		return nil, malformed("bad attestationVersion")
	}
	kd.AttestationVersion = int(v)
	if kd.AttestationSecurityLevel, seq, ok = readSecurityLevel(seq); !ok {
		return nil, malformed("bad attestationSecurityLevel")
	}
	if v, seq, ok = readInt(seq, tagInteger); !ok || !fitsInt(v) {
		return nil, malformed("bad keymasterVersion")
	}
	kd.KeymasterVersion = int(v)
	if kd.KeymasterSecurityLevel, seq, ok = readSecurityLevel(seq); !ok {
		return nil, malformed("bad keymasterSecurityLevel")
	}
	if kd.Challenge, seq, ok = readUniversal(seq, tagOctetString, false); !ok {
		return nil, malformed("bad attestationChallenge")
	}
	if kd.UniqueID, seq, ok = readUniversal(seq, tagOctetString, false); !ok {
		return nil, malformed("bad uniqueId")
	}
	var list []byte
	if list, seq, ok = readUniversal(seq, tagSequence, true); !ok {
		return nil, malformed("bad softwareEnforced")
	}
	if err := parseAuthList(list, &kd.Software); err != nil {
		return nil, err
	}
	if list, _, ok = readUniversal(seq, tagSequence, true); !ok {
		return nil, malformed("bad hardwareEnforced")
	}
	if err := parseAuthList(list, &kd.Hardware); err != nil {
		return nil, err
	}
	// Anything after hardwareEnforced is ignored: a future schema may append.
	return kd, nil
}

func readSecurityLevel(b []byte) (SecurityLevel, []byte, bool) {
	v, rest, ok := readInt(b, tagEnumerated)
	// Unknown levels are refused rather than ordered: ">= tee" must not be
	// satisfied by a value nobody defined.
	if !ok || v < 0 || v > 2 {
		return 0, nil, false
	}
	return SecurityLevel(v), rest, true
}

// Known AuthorizationList tags.
const (
	tagPurpose          = 1
	tagAlgorithm        = 2
	tagKeySize          = 3
	tagDigest           = 5
	tagECCurve          = 10
	tagNoAuthRequired   = 503
	tagCreationDateTime = 701
	tagOrigin           = 702
	tagRootOfTrust      = 704
	tagOSVersion        = 705
	tagOSPatchLevel     = 706
	tagAppID            = 709
	tagVendorPatchLevel = 718
	tagBootPatchLevel   = 719
)

// knownTags gives each decoded tag a bit for duplicate detection.
var knownTags = [...]uint32{
	tagPurpose, tagAlgorithm, tagKeySize, tagDigest, tagECCurve, tagNoAuthRequired,
	tagCreationDateTime, tagOrigin, tagRootOfTrust, tagOSVersion, tagOSPatchLevel,
	tagAppID, tagVendorPatchLevel, tagBootPatchLevel,
}

func parseAuthList(b []byte, al *AuthorizationList) error {
	al.Origin = -1
	var seen uint32
	for len(b) > 0 {
		h, field, rest, ok := readTLV(b)
		if !ok || h.class != classContext || !h.constructed {
			return malformed("bad authorization list entry")
		}
		b = rest
		bit := uint32(0)
		for i, t := range knownTags {
			if t == h.number {
				bit = 1 << i
				break
			}
		}
		if bit == 0 {
			continue // new KeyMint tags: skip, the [n] wrapper gave us the length
		}
		// A duplicate would let two readers of the same cert disagree.
		if seen&bit != 0 {
			return malformed("duplicate authorization tag " + strconv.Itoa(int(h.number)))
		}
		seen |= bit
		if err := parseAuthField(h.number, field, al); err != nil {
			return err
		}
	}
	return nil
}

// parseAuthField decodes the single element inside an [n] EXPLICIT wrapper.
func parseAuthField(tag uint32, field []byte, al *AuthorizationList) error {
	bad := func() error { return malformed("bad authorization tag " + strconv.Itoa(int(tag))) }
	var (
		v    int64
		rest []byte
		ok   bool
	)
	switch tag {
	case tagPurpose, tagDigest:
		var set []byte
		if set, rest, ok = readUniversal(field, tagSet, true); !ok || len(rest) != 0 {
			return bad()
		}
		var out []int
		for len(set) > 0 {
			if v, set, ok = readInt(set, tagInteger); !ok || !fitsInt(v) {
				return bad()
			}
			out = append(out, int(v))
		}
		if tag == tagPurpose {
			al.Purposes = out
		} else {
			al.Digests = out
		}
		return nil
	case tagNoAuthRequired:
		if c, rest, ok := readUniversal(field, tagNull, false); !ok || len(c) != 0 || len(rest) != 0 {
			return bad()
		}
		al.NoAuthRequired = true
		return nil
	case tagRootOfTrust:
		rot, ok := parseRootOfTrust(field)
		if !ok {
			return bad()
		}
		al.RootOfTrust = rot
		return nil
	case tagAppID:
		var oct []byte
		if oct, rest, ok = readUniversal(field, tagOctetString, false); !ok || len(rest) != 0 {
			return bad()
		}
		app, ok := parseAppID(oct)
		if !ok {
			return bad()
		}
		al.ApplicationID = app
		return nil
	}
	// The rest are plain INTEGERs.
	if v, rest, ok = readInt(field, tagInteger); !ok || len(rest) != 0 || !fitsInt(v) {
		return bad()
	}
	switch tag {
	case tagAlgorithm:
		al.Algorithm = int(v)
	case tagKeySize:
		al.KeySize = int(v)
	case tagECCurve:
		al.ECCurve = int(v)
	case tagCreationDateTime:
		al.CreationDateTime = v
	case tagOrigin:
		al.Origin = int(v)
	case tagOSVersion:
		al.OSVersion = int(v)
	case tagOSPatchLevel:
		al.OSPatchLevel = int(v)
	case tagVendorPatchLevel:
		al.VendorPatchLevel = int(v)
	case tagBootPatchLevel:
		al.BootPatchLevel = int(v)
	}
	return nil
}

func fitsInt(v int64) bool { return int64(int(v)) == v }

func parseRootOfTrust(field []byte) (*RootOfTrust, bool) {
	seq, rest, ok := readUniversal(field, tagSequence, true)
	if !ok || len(rest) != 0 {
		return nil, false
	}
	rot := new(RootOfTrust)
	if rot.VerifiedBootKey, seq, ok = readUniversal(seq, tagOctetString, false); !ok {
		return nil, false
	}
	var b []byte
	if b, seq, ok = readUniversal(seq, tagBoolean, false); !ok || len(b) != 1 {
		return nil, false
	}
	// DER says TRUE is 0xff; some TEEs write 0x01. Reading any non-zero as
	// true is what the device meant, and false (0x00) stays unambiguous.
	rot.DeviceLocked = b[0] != 0
	var v int64
	if v, seq, ok = readInt(seq, tagEnumerated); !ok || v < 0 || v > 3 {
		return nil, false
	}
	rot.VerifiedBootState = BootState(v)
	if len(seq) > 0 { // verifiedBootHash, attestation version >= 3
		if rot.VerifiedBootHash, _, ok = readUniversal(seq, tagOctetString, false); !ok {
			return nil, false
		}
	}
	return rot, true
}

func parseAppID(b []byte) (*ApplicationID, bool) {
	seq, rest, ok := readUniversal(b, tagSequence, true)
	if !ok || len(rest) != 0 {
		return nil, false
	}
	var pkgs, digs []byte
	if pkgs, seq, ok = readUniversal(seq, tagSet, true); !ok {
		return nil, false
	}
	if digs, _, ok = readUniversal(seq, tagSet, true); !ok {
		return nil, false
	}
	app := new(ApplicationID)
	for len(pkgs) > 0 {
		var info, name []byte
		if info, pkgs, ok = readUniversal(pkgs, tagSequence, true); !ok {
			return nil, false
		}
		if name, info, ok = readUniversal(info, tagOctetString, false); !ok {
			return nil, false
		}
		var ver int64
		if ver, _, ok = readInt(info, tagInteger); !ok {
			return nil, false
		}
		app.Packages = append(app.Packages, Package{Name: string(name), Version: ver})
	}
	for len(digs) > 0 {
		var d []byte
		if d, digs, ok = readUniversal(digs, tagOctetString, false); !ok {
			return nil, false
		}
		app.SignatureDigests = append(app.SignatureDigests, d)
	}
	return app, true
}
