//go:build !linux

package memtune

import "errors"

func ReleaseStartupPages() (before, after int64, err error) {
	return 0, 0, errors.New("not supported on this OS")
}
