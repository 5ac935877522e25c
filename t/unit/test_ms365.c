/*
 * Unit tests of the Microsoft 365 syntax rules (src/ms365.c): object,
 * application and directory GUIDs, directory domain names, user principal
 * names.  The statements are tested against PostgreSQL by t/ctl_ms365.t.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ms365.h"
#include "pa.h"
#include "tap.h"

struct vec {
	const char *s;
	bool guid, directory, upn;
};

static const struct vec vecs[] = {
	{ "3f2504e0-4f89-41d3-9a0c-0305e82c3301", true, true, false },
	{ "3F2504E0-4F89-41D3-9A0C-0305E82C3301", true, true, false },
	{ "00000000-0000-0000-0000-000000000000", true, true, false },
	{ "3f2504e0-4f89-41d3-9a0c-0305e82c330", false, false, false },
	{ "3f2504e0-4f89-41d3-9a0c-0305e82c33011", false, false, false },
	{ "{3f2504e0-4f89-41d3-9a0c-0305e82c3301}", false, false, false },
	{ "3f2504e04f8941d39a0c0305e82c3301", false, false, false },
	{ "3f2504e0_4f89_41d3_9a0c_0305e82c3301", false, false, false },
	{ "g f2504e0-4f89-41d3-9a0c-0305e82c330", false, false, false },
	{ "3f2504e0-4f89-41d3-9a0c-0305e82c330g", false, false, false },
	{ "contoso.onmicrosoft.com", false, true, false },
	{ "Contoso.OnMicrosoft.com", false, true, false },
	{ "xn--bcher-kva.example", false, true, false },
	{ "a.b", false, true, false },
	{ "common", false, false, false },
	{ "organizations", false, false, false },
	{ "consumers", false, false, false },
	{ "localhost", false, false, false },
	{ "192.0.2.1", false, false, false },
	{ "[2001:db8::1]", false, false, false },
	{ "contoso.example.", false, false, false },
	{ ".contoso.example", false, false, false },
	{ "contoso..example", false, false, false },
	{ "-contoso.example", false, false, false },
	{ "contoso-.example", false, false, false },
	{ "contoso.example-", false, false, false },
	{ "con toso.example", false, false, false },
	{ "contoso.example\r\n", false, false, false },
	{ "contoso.example/x", false, false, false },
	{ "", false, false, false },
	{ "alice@contoso.example", false, false, true },
	{ "Alice.Smith@Contoso.onmicrosoft.com", false, false, true },
	{ "o'brien;--@contoso.example", false, false, true },
	{ "a@b", false, false, true },
	{ "@b", false, false, false },
	{ "a@", false, false, false },
	{ "a@b@c", false, false, false },
	{ "a b@c", false, false, false },
	{ "a@b\n", false, false, false },
	{ "a\t@b", false, false, false },
	{ "ab", false, false, false },
};

/* s with control characters as '?', for test names (one TAP line each). */
static const char *
shown(const char *s, char buf[64])
{
	size_t i;

	for (i = 0; s[i] != '\0' && i < 63; i++)
		buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	buf[i] = '\0';
	return buf;
}

int
main(void)
{
	char longdir[300], longlabel[80], longupn[300];

	for (size_t i = 0; i < PA_NELEM(vecs); i++) {
		const struct vec *v = &vecs[i];
		char b[64];

		ok(pa_ms365_guid(v->s) == v->guid, "guid '%s': %s", shown(v->s, b),
		    v->guid ? "yes" : "no");
		ok(pa_ms365_directory(v->s) == v->directory, "directory '%s': %s", shown(v->s, b),
		    v->directory ? "yes" : "no");
		ok(pa_ms365_upn(v->s) == v->upn, "upn '%s': %s", shown(v->s, b),
		    v->upn ? "yes" : "no");
	}
	ok(!pa_ms365_guid(NULL) && !pa_ms365_directory(NULL) && !pa_ms365_upn(NULL), "NULL: no");

	/* 253 characters is the longest DNS name, 63 the longest label */
	memset(longdir, 'a', sizeof(longdir));
	for (size_t i = 60; i < 253; i += 61)
		longdir[i] = '.';
	longdir[253] = '\0';
	ok(pa_ms365_directory(longdir), "a 253-character domain name");
	longdir[253] = 'a';
	longdir[254] = '\0';
	ok(!pa_ms365_directory(longdir), "a 254-character domain name");
	memset(longlabel, 'a', sizeof(longlabel));
	strcpy(longlabel + 63, ".example");
	ok(pa_ms365_directory(longlabel), "a 63-character label");
	memset(longlabel, 'a', sizeof(longlabel));
	strcpy(longlabel + 64, ".example");
	ok(!pa_ms365_directory(longlabel), "a 64-character label");

	memset(longupn, 'u', sizeof(longupn));
	longupn[240] = '@';
	longupn[254] = '\0';
	ok(pa_ms365_upn(longupn), "a 254-character UPN");
	longupn[254] = 'u';
	longupn[255] = '\0';
	ok(!pa_ms365_upn(longupn), "a 255-character UPN");
	return done_testing();
}
