# Turns `sam local generate-event apigateway http-api-proxy --method M --path P [--body B]` into the event
# PredictorApi sends the predictor for that request (template.yaml: one route `ANY /{proxy+}`, payload
# format 2.0, IAM authorizer, no stage variables). Argument: --arg query '<raw query string, or empty>'.
# Everything else (requestContext ids, times, the base64 body) is left as SAM generated it.
.routeKey = "ANY /{proxy+}"
| .requestContext.routeKey = "ANY /{proxy+}"
| .pathParameters = {proxy: (.rawPath | ltrimstr("/"))}
| .rawQueryString = $query
| if $query == "" then del(.queryStringParameters)
  else .queryStringParameters = ($query | split("&") | map(split("=") | {(.[0]): .[1]}) | add)
  end
# Lower-case header names, as HTTP APIs deliver them; a JSON body needs its content type (else FastAPI 422s).
| .headers = ({accept: "application/json"}
    + if .requestContext.http.method == "POST" then {"content-type": "application/json"} else {} end)
| del(.cookies)
| del(.stageVariables)
# An IAM-authorised route carries the caller's identity instead of the generated JWT claims.
| .requestContext.authorizer = {
    iam: {
      accessKey: "AKIAIOSFODNN7EXAMPLE",
      accountId: "123456789012",
      callerId: "AIDACKCEVSQ6C2EXAMPLE",
      cognitoIdentity: null,
      principalOrgId: null,
      userArn: "arn:aws:iam::123456789012:user/operator",
      userId: "AIDACKCEVSQ6C2EXAMPLE"
    }
  }
| if .requestContext.http.method == "GET" then del(.body) | .isBase64Encoded = false else . end
