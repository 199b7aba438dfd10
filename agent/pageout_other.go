//go:build !linux

package agent

import "errors"

func releaseStartupPages() (before, after int64, err error) {
	return 0, 0, errors.New("not supported on this OS")
}
