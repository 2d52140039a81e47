import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  matchSpecPath,
  requestSchemaPointer,
  responseSchemaPointer,
  SPEC_PATH,
  validateExchange,
  validateSpecBody,
  type HttpExchange,
} from './openapi-validator.ts';

const okError = { Errors: [{ ErrorCode: 'U014', Message: 'Amount exceeds MaximumIndividualAmount', Path: 'Data.ControlParameters.MaximumIndividualAmount' }] };

function exchange(overrides: Partial<HttpExchange> = {}): HttpExchange {
  return {
    method: 'POST',
    url: '/open-banking/v4.0/pisp/domestic-vrps',
    requestHeaders: { authorization: 'Bearer t', 'x-idempotency-key': 'k' },
    requestBody: { Data: {}, Risk: {} },
    statusCode: 400,
    responseHeaders: { 'x-fapi-interaction-id': 'i' },
    responseBody: okError,
    ...overrides,
  };
}

describe('openapi-validator', () => {
  it('reads the official spec from ../shared/conformance beside the repo', () => {
    expect(existsSync(SPEC_PATH)).toBe(true);
    expect(SPEC_PATH).toMatch(/shared\/conformance\/obie-vrp-openapi\.json$/);
  });

  it('accepts a body that follows a component schema', () => {
    expect(validateSpecBody('OBErrorResponse1', okError)).toEqual([]);
  });

  it('rejects a body that breaks a component schema, saying where', () => {
    const errors = validateSpecBody('OBErrorResponse1', { Errors: [{ ErrorCode: 'UK.OBIE.Field.Invalid' }] });
    expect(errors).toEqual([expect.stringMatching(/^\/Errors\/0\/ErrorCode must NOT have more than 4 characters/)]);
  });

  it('holds namespaced enumerations to the standard values', () => {
    const account = { SchemeName: 'UK.OBIE.SortCodeAccountNumber', Identification: '11223344556677', Name: 'n' };
    expect(validateSpecBody('OBCashAccountCreditor3', account)).toEqual([]);
    expect(validateSpecBody('OBCashAccountCreditor3', { ...account, SchemeName: 'SortCodeAccountNumber' })).not.toEqual([]);
  });

  it('refuses a schema name the spec does not have', () => {
    expect(() => validateSpecBody('OBNoSuchThing', {})).toThrow(RangeError);
  });

  it('finds operations and their request and response schemas', () => {
    expect(matchSpecPath('/open-banking/v4.0/pisp/domestic-vrps/abc')).toBe('/domestic-vrps/{DomesticVRPId}');
    expect(matchSpecPath('/open-banking/v3.1/pisp/domestic-vrps/abc')).toBeUndefined();
    expect(requestSchemaPointer('/domestic-vrps', 'POST')).toBe('/paths/~1domestic-vrps/post/requestBody/content/application~1json/schema');
    expect(requestSchemaPointer('/domestic-vrps/{DomesticVRPId}', 'GET')).toBeUndefined();
    expect(responseSchemaPointer('/domestic-vrps', 'POST', 201)).toBe('/components/responses/20xOBDomesticVRPResponse/content/application~1json/schema');
    expect(responseSchemaPointer('/domestic-vrps', 'POST', 401)).toBeUndefined();
  });

  it('passes an exchange whose headers and bodies conform, leaving x-jws-signature aside by default', () => {
    const valid = exchange({ requestBody: { Data: { ConsentId: 'c', PSUAuthenticationMethod: 'UK.OBIE.SCANotRequired', VRPType: 'UK.OBIE.VRPType.Other', Initiation: {}, Instruction: { InstructionIdentification: 'i', EndToEndIdentification: 'e', InstructedAmount: { Amount: '1.00', Currency: 'GBP' }, CreditorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: 'GB33BUKB20201555555555', Name: 'n' } } }, Risk: {} } });
    expect(validateExchange(valid)).toEqual([]);
    expect(validateExchange(valid, { ignoreHeaders: [] })).toEqual(['request: header x-jws-signature is required', 'response: header x-jws-signature is required']);
  });

  it('flags a missing header, an unlisted status and a bad body', () => {
    const problems = validateExchange(exchange({ requestHeaders: { authorization: 'Bearer t' }, statusCode: 404, responseHeaders: {} }));
    expect(problems).toContain('request: header x-idempotency-key is required');
    expect(problems).toContain('response: status 404 is not listed for POST /domestic-vrps');
    expect(problems.some((p) => p.startsWith('request body: /Data must have required property'))).toBe(true);
  });
});
