/* quantity.h - parsing and formatting of resource quantities as the StateSet API writes them.
 *
 * CPUs: "1", "2", "0.5", "500m"  -> millicpus (1000 = one CPU).
 * Bytes: "512Mi", "2Gi", "1G", "100M", "1.5Gi", "1048576" -> bytes.
 *   Binary suffixes Ki Mi Gi Ti Pi Ei are powers of 1024; decimal k K M G T P E are powers of
 *   1000 (Kubernetes' rules). At most 3 fractional digits.
 */
#ifndef WARREN_QUANTITY_H
#define WARREN_QUANTITY_H

#include <stddef.h>
#include <stdint.h>

/* Parse a CPU quantity into millicpus. 0 or -EINVAL (syntax) / -ERANGE (overflow). */
int qty_parse_cpus(const char *s, uint64_t *ret_millis);

/* Parse a byte quantity. 0 or -EINVAL / -ERANGE. */
int qty_parse_bytes(const char *s, uint64_t *ret_bytes);

/* Format millicpus as "2" or "500m". */
void qty_format_cpus(uint64_t millis, char *buf, size_t len);

/* Format bytes with the largest binary suffix that divides them exactly ("2Gi", "1536Mi",
 * "1000"). */
void qty_format_bytes(uint64_t bytes, char *buf, size_t len);

#endif
