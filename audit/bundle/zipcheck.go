package bundle

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
)

// The zip container's rules beyond what archive/zip enforces, the same in
// the console's reader (web/src/verify/zip.ts) so that the two verifiers
// read every bundle alike (docs/BUNDLE.md, "The zip container"). An honest
// exporter (archive/zip's Writer) never breaks one.
const (
	eocdSig       = 0x06054b50
	eocdLen       = 22
	zip64LocSig   = 0x07064b50
	zip64LocLen   = 20
	zip64EndSig   = 0x06064b50
	zip64EndLen   = 56
	descriptorSig = 0x08074b50
	descriptorLen = 16
	dirHeaderLen  = 46
)

// checkContainer checks, for a zip that archive/zip has opened: the end
// of central directory record's comment runs exactly to the end of the
// file; the disk numbers are 0; zip64 values are used only with a zip64
// locator directly before the end record, whose zip64 end record
// directly precedes it, and the 16- and 32-bit values of the end record
// are either the zip64 marker or the zip64 values; the central directory
// ends exactly where the (zip64) end record begins, so nothing comes
// before the zip; and it holds exactly the number of records the end
// record says, back to back.
func checkContainer(r io.ReaderAt, size int64, zr *zip.Reader) error {
	p := size - eocdLen - int64(len(zr.Comment))
	var end [eocdLen]byte
	if p < 0 {
		return fmt.Errorf("no end of central directory record")
	}
	if _, err := r.ReadAt(end[:], p); err != nil {
		return fmt.Errorf("read the end of central directory record: %v", err)
	}
	le := binary.LittleEndian
	if le.Uint32(end[0:]) != eocdSig || int(le.Uint16(end[20:])) != len(zr.Comment) {
		return fmt.Errorf("the end of central directory record's comment does not end the file")
	}
	if le.Uint16(end[4:]) != 0 || le.Uint16(end[6:]) != 0 || le.Uint16(end[8:]) != le.Uint16(end[10:]) {
		return fmt.Errorf("the end of central directory record names other disks")
	}
	count16, size32, off32 := le.Uint16(end[10:]), le.Uint32(end[12:]), le.Uint32(end[16:])
	count, dirSize, dirOff, dirEnd := uint64(count16), uint64(size32), uint64(off32), uint64(p)
	var loc [zip64LocLen]byte
	if p >= zip64LocLen {
		if _, err := r.ReadAt(loc[:], p-zip64LocLen); err != nil {
			return fmt.Errorf("read the zip64 locator: %v", err)
		}
	}
	switch {
	case p >= zip64LocLen && le.Uint32(loc[0:]) == zip64LocSig:
		recOff := le.Uint64(loc[8:])
		if le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) != 1 || recOff+zip64EndLen != uint64(p-zip64LocLen) {
			return fmt.Errorf("the zip64 locator does not point to a zip64 end record directly before it")
		}
		var rec [zip64EndLen]byte
		if _, err := r.ReadAt(rec[:], int64(recOff)); err != nil {
			return fmt.Errorf("read the zip64 end record: %v", err)
		}
		if le.Uint32(rec[0:]) != zip64EndSig || le.Uint64(rec[4:]) != zip64EndLen-12 ||
			le.Uint32(rec[16:]) != 0 || le.Uint32(rec[20:]) != 0 || le.Uint64(rec[24:]) != le.Uint64(rec[32:]) {
			return fmt.Errorf("bad zip64 end record")
		}
		count, dirSize, dirOff, dirEnd = le.Uint64(rec[32:]), le.Uint64(rec[40:]), le.Uint64(rec[48:]), recOff
		if (count16 != 0xffff && uint64(count16) != count) || (size32 != 0xffffffff && uint64(size32) != dirSize) ||
			(off32 != 0xffffffff && uint64(off32) != dirOff) {
			return fmt.Errorf("the end record and the zip64 end record disagree")
		}
	case count16 == 0xffff || size32 == 0xffffffff || off32 == 0xffffffff:
		return fmt.Errorf("zip64 values in the end record without a zip64 locator")
	}
	if dirOff > dirEnd || dirOff+dirSize != dirEnd {
		return fmt.Errorf("the central directory (%d bytes at %d) does not end where the end record begins (%d): bytes before or inside the zip",
			dirSize, dirOff, dirEnd)
	}
	if count != uint64(len(zr.File)) {
		return fmt.Errorf("the central directory holds %d records, the end record says %d", len(zr.File), count)
	}
	var n uint64
	for _, f := range zr.File {
		n += uint64(dirHeaderLen + len(f.Name) + len(f.Extra) + len(f.Comment))
	}
	if n != dirSize {
		return fmt.Errorf("the central directory's records fill %d bytes, the end record says %d", n, dirSize)
	}
	return nil
}

// checkDescriptor checks the data descriptor of a file that has one
// (flag 0x8): it must follow the file's data, with its signature, and
// give the CRC-32 and the two sizes of the central directory (as 32-bit
// values: no file of a bundle reaches 4 GiB).
func checkDescriptor(r io.ReaderAt, f *zip.File) error {
	if f.Flags&0x8 == 0 {
		return nil
	}
	off, err := f.DataOffset()
	if err != nil {
		return err
	}
	var d [descriptorLen]byte
	if _, err := r.ReadAt(d[:], off+int64(f.CompressedSize64)); err != nil {
		return fmt.Errorf("no data descriptor after the data: %v", err)
	}
	le := binary.LittleEndian
	if le.Uint32(d[0:]) != descriptorSig || le.Uint32(d[4:]) != f.CRC32 ||
		uint64(le.Uint32(d[8:])) != f.CompressedSize64 || uint64(le.Uint32(d[12:])) != f.UncompressedSize64 {
		return fmt.Errorf("the data descriptor does not give the central directory's CRC-32 and sizes")
	}
	return nil
}
