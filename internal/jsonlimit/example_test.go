package jsonlimit_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apiguard/apiguard/internal/jsonlimit"
)

// A gateway copies the body into a Scanner (or tees it while forwarding);
// io.Copy stops at the first chunk that proves the body bad.
func Example() {
	body := strings.NewReader(strings.Repeat("[", 10<<20)) // 10 MiB attack
	s := jsonlimit.NewScanner(jsonlimit.Limits{MaxDepth: 32, MaxElements: 10000})
	n, err := io.Copy(s, io.LimitReader(body, 1<<30)) // the body-size cap
	if err == nil {
		err = s.Close()
	}
	fmt.Println(errors.Is(err, jsonlimit.ErrTooDeep), n)

	fmt.Println(jsonlimit.Check([]byte(`{"a":[1,2,3]}`), jsonlimit.Limits{MaxElements: 3}))
	fmt.Println(jsonlimit.Check([]byte(`{"a":[1,2,]}`), jsonlimit.Limits{}))
	// Output:
	// true 32
	// jsonlimit: too many elements
	// jsonlimit: invalid character looking for beginning of value (offset 11)
}
